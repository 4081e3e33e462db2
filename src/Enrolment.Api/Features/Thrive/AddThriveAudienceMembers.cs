using Enrolment.Api.Features.Audiences;
using Enrolment.Api.Features.Operations;
using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Auth;
using Enrolment.Domain;
using Marten;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using NodaTime;
using Wolverine;
using Wolverine.Http;

namespace Enrolment.Api.Features.Thrive;

/// <summary>The body: a bare JSON array of user ids (a type of its own, so Wolverine reads it from the body, not the query).</summary>
public sealed class ThriveUserIds : List<string?>;

public sealed record ThriveReference(string? Reference);

public sealed record ThriveFailure(string? Reference, string Reason);

public sealed record ThriveOutcome<T>(int Count, List<T> Entities);

/// <summary>Thrive's bulk answer: what was applied and what was not, each entity named by the reference the client sent.</summary>
public sealed record ThriveBulkResult(ThriveOutcome<ThriveReference> Success, ThriveOutcome<ThriveFailure> Failure, OperationStatus? Operation);

/// <summary>
/// Thrive's "add audience members": a bare array of 1–100 user ids. The valid ones are added through the same
/// membership change as POST /audiences/{audienceId}/members (enrolments follow in the fan-out named by
/// <c>operation</c>); an id that breaks the id rule is reported in <c>failure</c> and the rest still apply (207).
/// </summary>
public static class AddThriveAudienceMembersEndpoint
{
    public const int MaxUsersPerRequest = 100;

    [WolverinePost("/rest/v1/audiences/{audienceId}/members", OperationId = "thriveAddAudienceMembers"), Authorize(Policy = AuthPolicies.Write)]
    [Tags(ThriveApi.Tag)]
    [EndpointSummary("Thrive: add members from a bare JSON array of 1–100 user ids. 200 when every id was added, 207 with success and failure lists when some were not; the enrolments follow in the fan-out named by operation.")]
    [ProducesResponseType<ThriveBulkResult>(StatusCodes.Status200OK, "application/json")]
    [ProducesResponseType<ThriveBulkResult>(StatusCodes.Status207MultiStatus, "application/json")]
    [ProducesResponseType<ProblemDetails>(StatusCodes.Status400BadRequest, "application/problem+json")]
    [ProducesResponseType<ProblemDetails>(StatusCodes.Status422UnprocessableEntity, "application/problem+json")]
    public static async Task<IResult> Post(string audienceId, ThriveUserIds? userIds, IDocumentSession session, IMessageBus bus, IClock clock, CancellationToken ct)
    {
        if (!RouteIds.TryExternal(audienceId, "audienceId", out var problem)) return problem!;
        if (userIds is not { Count: >= 1 and <= MaxUsersPerRequest })
            return Problems.Validation("body", $"The body must be a JSON array of 1 to {MaxUsersPerRequest} user ids, e.g. [\"u1\",\"u2\"].");

        var failures = userIds.Where(u => !Ids.IsValidExternalId(u))
            .Select(u => new ThriveFailure(u, "A user id must be 1–64 characters of A–Z, a–z, 0–9 and . _ : @ -")).ToList();
        if (failures.Count == userIds.Count)
            return Problems.Validation("body", $"None of the {userIds.Count} user ids is valid: each must be 1–64 characters of A–Z, a–z, 0–9 and . _ : @ -");

        // The rest goes through our own route's rules and change, so both routes add members the same way.
        if (!Membership.TryValidate(audienceId, new MembersRequest(userIds.Where(Ids.IsValidExternalId).ToArray()!), out var valid, out var invalid)) return invalid!;
        var (held, current) = await Membership.LockAndRead(session, audienceId, ct);
        var change = await Membership.Change(session, bus, clock.GetCurrentInstant(), held, valid.Where(u => !current.Contains(u)).ToArray(), [], ct);

        var success = valid.Select(u => new ThriveReference(u)).ToList();
        var body = new ThriveBulkResult(new(success.Count, success), new(failures.Count, failures), change.Operation);
        return Results.Json(body, Json.Options, statusCode: failures.Count > 0 ? StatusCodes.Status207MultiStatus : StatusCodes.Status200OK);
    }
}
