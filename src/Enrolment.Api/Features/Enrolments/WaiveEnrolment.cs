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

/// <param name="Reason">Why the user is exempt (1–500 characters), kept in the eventLog and the event stream.</param>
public sealed record WaiveEnrolmentRequest(string? Reason);

public static class WaiveEnrolmentEndpoint
{
    [WolverinePost("/assignments/{assignmentId}/enrolments/{enrolmentId}/waive", OperationId = "waiveEnrolment"), Authorize(Policy = AuthPolicies.Write)]
    [Tags("Enrolments")]
    [EndpointSummary("Waive the current period (an exemption, with its reason): an open or overdue enrolment becomes complete without a completion.")]
    [ProducesResponseType<EnrolmentView>(StatusCodes.Status200OK)]
    [ProducesResponseType<ProblemDetails>(StatusCodes.Status404NotFound, "application/problem+json")]
    [ProducesResponseType<ProblemDetails>(StatusCodes.Status409Conflict, "application/problem+json")]
    [ProducesResponseType<ProblemDetails>(StatusCodes.Status422UnprocessableEntity, "application/problem+json")]
    public static Task<IResult> Post(string assignmentId, string enrolmentId, WaiveEnrolmentRequest? request, IDocumentSession session, IMessageBus bus, IClock clock, CancellationToken ct) =>
        request is null
            ? Task.FromResult<IResult>(Problems.Validation("body", "The body must be a JSON object with a reason."))
            : EnrolmentWriter.ChangeOne(assignmentId, enrolmentId, session, bus, state => EnrolmentRules.Waive(state, request.Reason, clock.GetCurrentInstant()), ct);
}
