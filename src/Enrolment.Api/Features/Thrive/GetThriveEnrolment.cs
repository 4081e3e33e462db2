using Enrolment.Api.Features.Enrolments;
using Enrolment.Api.Infrastructure.Sql;
using Enrolment.Api.Infrastructure.Auth;
using Marten;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using Wolverine.Http;

namespace Enrolment.Api.Features.Thrive;

public static class GetThriveEnrolmentEndpoint
{
    [WolverineGet("/rest/v1/assignments/{assignmentId}/enrolments/{enrolmentId}", OperationId = "thriveGetEnrolment"), Authorize(Policy = AuthPolicies.Read)]
    [Tags(ThriveApi.Tag)]
    [EndpointSummary("Thrive: the enrolment with its eventLog, as GET /assignments/{assignmentId}/enrolments/{enrolmentId} answers it (?asOf= too).")]
    [ProducesResponseType<EnrolmentView>(StatusCodes.Status200OK, "application/json")]
    [ProducesResponseType<ProblemDetails>(StatusCodes.Status404NotFound, "application/problem+json")]
    [ProducesResponseType<ProblemDetails>(StatusCodes.Status422UnprocessableEntity, "application/problem+json")]
    public static Task<IResult> Get(string assignmentId, string enrolmentId, string? asOf, IQuerySession session, EnrolmentTable table, CancellationToken ct) =>
        GetEnrolmentEndpoint.Get(assignmentId, enrolmentId, asOf, session, table, ct);
}
