using Enrolment.Api.Features.Enrolments;
using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Auth;
using Enrolment.Domain;
using Marten;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using NodaTime;
using Wolverine;
using Wolverine.Http;

namespace Enrolment.Api.Features.Completions;

/// <summary>The rules of recording a completion, shared by POST /completions and the bus.</summary>
public static class CompletionRecorder
{
    /// <summary>Completions may be stamped slightly ahead of our clock (client clock skew), not more.</summary>
    public static readonly Duration AllowedClockSkew = Duration.FromMinutes(5);

    public static Dictionary<string, string[]> Validate(string? completionId, string? userId, string? contentId, Instant? completedAt, double? answer, Instant now)
    {
        const string idRule = "Required: 1–64 characters of A–Z, a–z, 0–9 and . _ : @ -";
        var errors = new Dictionary<string, string[]>();
        if (!Ids.IsValidExternalId(completionId)) errors["completionId"] = [idRule];
        if (!Ids.IsValidExternalId(userId)) errors["userId"] = [idRule];
        if (!Ids.IsValidExternalId(contentId)) errors["contentId"] = [idRule];
        if (completedAt is null) errors["completedAt"] = ["Required: an ISO-8601 instant such as 2023-08-23T09:09:16.076Z."];
        else if (completedAt > now + AllowedClockSkew) errors["completedAt"] = ["Must not be in the future."];
        if (answer is { } a && (double.IsNaN(a) || double.IsInfinity(a))) errors["answer"] = ["Must be a finite number."];
        return errors;
    }

    /// <summary>
    /// Completes every open or overdue enrolment of the user whose primary content matches, and records the
    /// completion under its id. A repeat with the same payload answers the first result and changes nothing;
    /// the same id with another payload is a conflict (null result).
    /// </summary>
    public static async Task<(CompletionResult? Result, bool Conflict)> Record(IDocumentSession session, IMessageBus bus, string userId, Completion completion, Instant now, CancellationToken ct)
    {
        // Rule 1 of the one writer: hold the user's lock before reading anything the decision depends on. A fan-out
        // batch enrolling or reinstating this user either committed before (its enrolments are found below) or waits
        // until this commits (and then finds this completion among the earlier ones).
        var locks = await EnrolmentWriter.LockUsers(session, [userId], ct);

        // One round trip for both: the record of an earlier completion with this id (a repeat answers from it, and
        // then the candidates are not needed), and the ids of the user's enrolments this completion may complete.
        var lookup = session.CreateBatchQuery();
        var previousLookup = lookup.Load<CompletionRecord>(completion.CompletionId);
        var candidatesLookup = lookup.Query<EnrolmentState>()
            .Where(v => v.UserId == userId && v.PrimaryContentId == completion.ContentId && (v.Status == EnrolmentStatus.Open || v.Status == EnrolmentStatus.Overdue || (v.Status == EnrolmentStatus.Complete && v.Waived)))
            .Select(v => v.Id)
            .ToList();
        await lookup.Execute(ct);

        if (await previousLookup is { } previous)
        {
            var p = previous.Result;
            var same = p.UserId == userId && p.ContentId == completion.ContentId && p.CompletedAt == completion.CompletedAt && p.Answer == completion.Answer;
            return same ? (p, false) : (null, true);
        }

        var decided = await EnrolmentWriter.Change(session, bus, await candidatesLookup, state => EnrolmentRules.Complete(state, completion, now), now, ct, locks);
        var completed = decided.Where(d => d.Changed)
            .Select(d => new CompletedEnrolment(d.Id, d.After!.AssignmentId, EnrolmentRules.Lower(d.After.Status), d.Decision.Events.OfType<EnrolmentCompleted>().Any(e => e.Late)))
            .ToList();

        var result = new CompletionResult(completion.CompletionId, userId, completion.ContentId, completion.CompletedAt, completion.Answer, now, completed);
        // Insert, not upsert: a concurrent request with the same completionId fails here and nothing of it commits.
        session.Insert(new CompletionRecord { Id = completion.CompletionId, Result = result });
        return (result, false);
    }
}
