namespace Enrolment.Domain; public static class Placeholder {}
