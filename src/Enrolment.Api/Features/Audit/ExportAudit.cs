using Enrolment.Api.Features.Enrolments;
using System.Text.Json;
using Enrolment.Api.Infrastructure.Auth;
using Enrolment.Api.Infrastructure.Sql;
using Marten;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using Wolverine.Http;

namespace Enrolment.Api.Features.Audit;

public static class ExportAuditEndpoint
{
    /// <summary>
    /// The tenant's events (all, one assignment's, one user's, or both filters' intersection) as NDJSON, one event a line
    /// with its hash and previous hash, then the tenant's checkpoints in order, then the anchor (the latest checkpoint):
    /// each read from one streaming query and written as read, flushed every 1,000 lines, so memory stays constant
    /// whatever the size. docs/audit.md describes each line.
    /// </summary>
    [ProducesResponseType<AuditExportLine>(StatusCodes.Status200OK, "application/x-ndjson")]
    [WolverineGet("/audit/export", OperationId = "exportAudit"), Authorize(Policy = AuthPolicies.Read)]
    [Tags("Audit")]
    [EndpointSummary("Tamper-evident export: events with their hash chain, then the anchor (NDJSON). Verify with docs/verify_export.py.")]
    public static async Task<IResult> Get(string? assignmentId, string? userId, HttpContext http, IQuerySession session, AuditTables tables,
        AuditCheckpoints checkpoints, EnrolmentTable enrolments, CancellationToken ct)
    {
        Guid? assignment = null;
        if (assignmentId is not null)
        {
            if (!RouteIds.TryGuid(assignmentId, "assignmentId", out var a, out var problem)) return problem!;
            assignment = a;
        }
        if (userId is not null && !RouteIds.TryExternal(userId, "userId", out var userProblem)) return userProblem!;

        var tenantId = session.TenantId;
        // The latest checkpoint first: every event it and the ones before it cover (sequence at or below their high-water
        // mark) is committed by now, so the events read next include them all. The checkpoints up to it are streamed after.
        var anchor = await checkpoints.Latest(tenantId, ct);

        http.Response.StatusCode = StatusCodes.Status200OK;
        http.Response.ContentType = "application/x-ndjson";
        await http.Response.StartAsync(ct);
        var body = http.Response.BodyWriter.AsStream();
        await using var json = new Utf8JsonWriter(body);
        var lines = 0L;
        async Task EndLine()
        {
            await json.FlushAsync(ct);
            json.Reset();
            body.WriteByte((byte)'\n');
            if (++lines % 1_000 == 0) await body.FlushAsync(ct);
        }

        await foreach (var row in tables.Export(tenantId, assignment, userId, enrolments.Table, ct))
        {
            var e = row.Event!;
            json.WriteStartObject();
            json.WriteString("kind", "event");
            json.WriteString("tenantId", tenantId);
            json.WriteString("streamId", row.StreamId);
            json.WriteNumber("version", row.Version);
            json.WriteNumber("sequence", row.Sequence);
            json.WriteString("type", e.Type);
            json.WriteString("timestamp", e.Timestamp);
            json.WriteStartObject("actor");
            json.WriteString("userName", e.UserName ?? "");
            json.WriteString("correlationId", e.CorrelationId ?? "");
            json.WriteString("causationId", e.CausationId ?? "");
            json.WriteString("headers", e.Headers ?? "");
            json.WriteEndObject();
            json.WriteString("dataText", e.Data);
            json.WritePropertyName("data");
            json.WriteRawValue(e.Data, skipInputValidation: true);
            if (row.Chain is { } c) { json.WriteString("previousHash", c.PreviousHash); json.WriteString("hash", c.Hash); }
            else { json.WriteNull("previousHash"); json.WriteNull("hash"); }
            json.WriteEndObject();
            await EndLine();
        }

        var events = lines;
        var upTo = anchor?.Id ?? 0;
        await foreach (var c in session.Query<AuditCheckpoint>().Where(c => c.Id <= upTo).OrderBy(c => c.Id).ToAsyncEnumerable(ct))
        {
            json.WriteStartObject();
            json.WriteString("kind", "checkpoint");
            json.WriteString("tenantId", tenantId);
            WriteCheckpoint(json, c);
            json.WriteEndObject();
            await EndLine();
        }

        json.WriteStartObject();
        json.WriteString("kind", "anchor");
        json.WriteString("tenantId", tenantId);
        json.WriteBoolean("wholeTenant", assignment is null && userId is null);
        json.WriteNumber("events", events);
        if (anchor is null) json.WriteNull("checkpoint");
        else WriteCheckpoint(json, anchor);
        json.WriteEndObject();
        await EndLine();
        await body.FlushAsync(ct);
        return Results.Empty;
    }

    /// <summary>A checkpoint as <see cref="AuditExportCheckpoint"/> describes it: the fields of its form only.</summary>
    private static void WriteCheckpoint(Utf8JsonWriter json, AuditCheckpoint c)
    {
        json.WriteStartObject("checkpoint");
        json.WriteNumber("number", c.Id);
        json.WriteNumber("form", c.Form);
        json.WriteNumber("highWaterSequence", c.HighWaterSequence);
        json.WriteString("takenAt", c.TakenAt);
        if (c.Form == 1)
        {
            json.WriteNumber("streamCount", c.StreamCount);
            json.WriteString("headsDigest", c.HeadsDigest);
        }
        else
        {
            if (c.Form == 3) json.WriteNumber("epoch", c.Epoch);
            json.WriteNumber("fromSequence", c.FromSequence);
            json.WriteNumber("eventCount", c.EventCount);
            json.WriteString("rangeDigest", c.RangeDigest);
        }
        json.WriteString("previousHash", c.PreviousHash);
        json.WriteString("hash", c.Hash);
        json.WriteEndObject();
    }
}
