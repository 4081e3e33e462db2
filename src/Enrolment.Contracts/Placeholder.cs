namespace Enrolment.Contracts; /// <summary>x</summary>
public static class Placeholder {}
