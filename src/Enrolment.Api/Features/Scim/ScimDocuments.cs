using NodaTime;

namespace Enrolment.Api.Features.Scim;

/// <summary>
/// A user an identity provider provisioned, per tenant. <see cref="Id"/> is the service's user id everywhere else
/// (enrolments, completions, audiences), chosen once at creation. The attributes are kept as the provider sent them
/// (minus id, meta, password and groups), so a GET answers what was written; the indexed fields are copies of three of them.
/// </summary>
public sealed class ScimUser
{
    public string Id { get; set; } = "";
    public string UserName { get; set; } = "";
    /// <summary>userName lowercased: userName is unique and matched case-insensitively (RFC 7643 §4.1.1, caseExact false).</summary>
    public string UserNameKey { get; set; } = "";
    public string? ExternalId { get; set; }
    public bool Active { get; set; } = true;
    /// <summary>The resource's attributes as JSON text.</summary>
    public string Attributes { get; set; } = "{}";
    public Instant Created { get; set; }
    public Instant LastModified { get; set; }
}

/// <summary>
/// A group an identity provider provisioned: a name on an audience (<see cref="Id"/> is the audience id). Its members
/// are the audience's members (AudienceMember), plus its inactive SCIM users (<see cref="SuspendedMembership"/>).
/// </summary>
public sealed class ScimGroup
{
    public string Id { get; set; } = "";
    public string DisplayName { get; set; } = "";
    /// <summary>displayName lowercased: unique in a tenant, matched case-insensitively.</summary>
    public string DisplayNameKey { get; set; } = "";
    public string? ExternalId { get; set; }
    public Instant Created { get; set; }
    public Instant LastModified { get; set; }
}

/// <summary>
/// A SCIM group membership of a deactivated user: while inactive the user does not count as a member of the audience
/// (their enrolments are archived), but the provider's membership is remembered, so reactivation rejoins them.
/// </summary>
public sealed class SuspendedMembership
{
    public string Id { get; set; } = "";
    public string AudienceId { get; set; } = "";
    public string UserId { get; set; } = "";
    public Instant SuspendedAt { get; set; }

    public static string Key(string audienceId, string userId) => audienceId + "/" + userId;
}
