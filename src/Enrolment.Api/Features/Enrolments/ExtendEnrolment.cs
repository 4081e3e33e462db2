using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Auth;
using Enrolment.Domain;
using Marten;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using NodaTime;
using Wolverine;
using Wolverine.Http;

namespace Enrolment.Api.Features.Enrolments;

/// <param name="DueDate">The new due date of the current period (an ISO-8601 instant): later than the current one and than now, not after the next period's availableDate.</param>
/// <param name="Reason">Why the extension was granted (1–500 characters), kept in the eventLog and the event stream.</param>
public sealed record ExtendEnrolmentRequest(string? DueDate, string? Reason);

public static class ExtendEnrolmentEndpoint
{
    [WolverinePost("/assignments/{assignmentId}/enrolments/{enrolmentId}/extend", OperationId = "extendEnrolment"), Authorize(Policy = AuthPolicies.Write)]
    [Tags("Enrolments")]
    [EndpointSummary("Move the current period's due date later, with a reason; an overdue enrolment becomes open again. Other enrolments and later periods keep their schedule.")]
    [ProducesResponseType<EnrolmentView>(StatusCodes.Status200OK)]
    [ProducesResponseType<ProblemDetails>(StatusCodes.Status404NotFound, "application/problem+json")]
    [ProducesResponseType<ProblemDetails>(StatusCodes.Status409Conflict, "application/problem+json")]
    [ProducesResponseType<ProblemDetails>(StatusCodes.Status422UnprocessableEntity, "application/problem+json")]
    public static Task<IResult> Post(string assignmentId, string enrolmentId, ExtendEnrolmentRequest? request, IDocumentSession session, IMessageBus bus, IClock clock, CancellationToken ct)
    {
        if (request is null) return Task.FromResult<IResult>(Problems.Validation("body", "The body must be a JSON object with a dueDate and a reason."));
        if (!Json.TryParseInstant(request.DueDate, out var dueDate))
            return Task.FromResult<IResult>(Problems.Validation("dueDate", "Required: an ISO-8601 instant such as 2023-08-23T09:09:16.076Z."));
        return EnrolmentWriter.ChangeOne(assignmentId, enrolmentId, session, bus, state => EnrolmentRules.Extend(state, dueDate, request.Reason, clock.GetCurrentInstant()), ct);
    }
}
