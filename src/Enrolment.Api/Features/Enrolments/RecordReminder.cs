using Enrolment.Api.Infrastructure.Auth;
using Enrolment.Domain;
using Marten;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using NodaTime;
using Wolverine;
using Wolverine.Http;

namespace Enrolment.Api.Features.Enrolments;

public static class RecordReminderEndpoint
{
    [WolverinePost("/assignments/{assignmentId}/enrolments/{enrolmentId}/reminders", OperationId = "recordReminder"), Authorize(Policy = AuthPolicies.Write)]
    [Tags("Enrolments")]
    [ProducesResponseType<EnrolmentView>(StatusCodes.Status200OK), ProducesResponseType(StatusCodes.Status404NotFound)]
    [EndpointSummary("Record that a reminder was sent. Adds an eventLog entry; the status does not change.")]
    public static Task<IResult> Post(string assignmentId, string enrolmentId, IDocumentSession session, IMessageBus bus, IClock clock, CancellationToken ct) =>
        EnrolmentWriter.ChangeOne(assignmentId, enrolmentId, session, bus, state => EnrolmentRules.Remind(state, clock.GetCurrentInstant()), ct);
}
