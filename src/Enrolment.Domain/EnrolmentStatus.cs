namespace Enrolment.Domain;

/// <summary>The statuses of PRODUCT.md's lifecycle table. Serialized lowercase.</summary>
public enum EnrolmentStatus
{
    /// <summary>Never a current status: only the previous status of the first eventLog entry.</summary>
    Unassigned,
    Scheduled,
    Open,
    Overdue,
    Complete,
    Archived,
}

public enum ArchiveReason
{
    LeftAudience,
    AssignmentRemoved,
    Explicit,
}
