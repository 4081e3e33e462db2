using Enrolment.Api.Infrastructure.Auth;
using Enrolment.Domain;
using Marten;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using NodaTime;
using Wolverine;
using Wolverine.Http;

namespace Enrolment.Api.Features.Enrolments;

public static class ArchiveEnrolmentEndpoint
{
    [WolverinePost("/assignments/{assignmentId}/enrolments/{enrolmentId}/archive", OperationId = "archiveEnrolment"), Authorize(Policy = AuthPolicies.Write)]
    [Tags("Enrolments")]
    [ProducesResponseType<EnrolmentView>(StatusCodes.Status200OK), ProducesResponseType(StatusCodes.Status404NotFound)]
    [EndpointSummary("Archive the enrolment. Archiving an archived enrolment changes nothing.")]
    public static Task<IResult> Post(string assignmentId, string enrolmentId, IDocumentSession session, IMessageBus bus, IClock clock, CancellationToken ct) =>
        EnrolmentWriter.ChangeOne(assignmentId, enrolmentId, session, bus, state => EnrolmentRules.Archive(state, ArchiveReason.Explicit, clock.GetCurrentInstant()), ct);
}
