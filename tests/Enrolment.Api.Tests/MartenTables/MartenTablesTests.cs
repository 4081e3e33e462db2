using Enrolment.Api.Infrastructure.MartenTables;
using Enrolment.Domain;
using Marten;
using Microsoft.Extensions.DependencyInjection;
using NodaTime;
using Npgsql;

namespace Enrolment.Api.Tests.MartenTables;

/// <summary>
/// The code under Infrastructure/MartenTables writes and reads Marten's tables directly. This compares, column by
/// column, a stream it starts by COPY with the same stream started by Marten's own append: an upgrade of Marten that
/// adds, renames or fills a column differently fails here, not in production.
/// </summary>
public sealed class MartenTablesTests(AppFixture fixture) : ApiTest(fixture)
{
    private static readonly Instant Now = Instant.FromUtc(2026, 1, 5, 9, 0);

    private static IReadOnlyList<IEnrolmentEvent> Stream(Guid id)
    {
        var schedule = new Schedule(Now - Duration.FromDays(1), Period.FromDays(30), null, null, Schedule.DefaultTimeZone);
        return EnrolmentRules.Enrol(id, Guid.Parse("0b8f5d0e-8a59-4c52-9a52-4d4a3b1f9c01"), "u1", "a1", "c1", schedule,
            [new Completion("x1", "c1", Now - Duration.FromHours(1), 75)], Now);
    }

    [Fact]
    public async Task A_stream_started_by_copy_has_the_rows_of_a_stream_started_by_marten()
    {
        var store = Host.Services.GetRequiredService<IDocumentStore>();
        Guid copied = Guid.NewGuid(), appended = Guid.NewGuid();

        // Both with the same actor metadata (Features/Compliance/EventActors), which the copy must write as Marten does.
        var actor = new Enrolment.Api.Features.Compliance.Actor("operation", "op-1", new("secret", "s1"));
        await using (var session = store.LightweightSession(TenantId))
        {
            Enrolment.Api.Features.Compliance.EventActors.Stamp(session, actor, "4bf92f3577b34da6a3ce929d0e0e4736", "cause-1");
            await StreamCopy.StartStreams(session, [Stream(copied)], Now, CancellationToken.None);
            // As in a fan-out batch, the session also has work of its own (its batch marker), so saving it commits.
            session.Store(new Enrolment.Api.Features.Content.ContentItem { Id = "c1" });
            await session.SaveChangesAsync();
        }
        await using (var session = store.LightweightSession(TenantId))
        {
            Enrolment.Api.Features.Compliance.EventActors.Stamp(session, actor, "4bf92f3577b34da6a3ce929d0e0e4736", "cause-1");
            session.Events.StartStream<EnrolmentState>(appended, Stream(appended).Cast<object>().ToArray());
            await session.SaveChangesAsync();
        }

        var dataSource = Host.Services.GetRequiredService<NpgsqlDataSource>();
        // Every column but the ones that differ by nature (ids, sequence numbers, timestamps), with the stream id blanked.
        async Task<List<string>> Rows(string table, string key, Guid id, params string[] skip)
        {
            await using var command = dataSource.CreateCommand(
                $"select to_jsonb(t) - $2::text[] from enrolment.{table} t where {key} = $1 order by 1::text");
            command.Parameters.AddWithValue(id);
            command.Parameters.AddWithValue(skip);
            var rows = new List<string>();
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync()) rows.Add(reader.GetString(0).Replace(id.ToString(), "<id>"));
            return rows;
        }

        string[] eventSkip = ["seq_id", "id", "timestamp"];
        Assert.All(await Rows("mt_events", "stream_id", copied), row => Assert.Contains("\"user_name\": \"operation:op-1\"", row));
        Assert.Equal(await Rows("mt_events", "stream_id", appended, eventSkip), await Rows("mt_events", "stream_id", copied, eventSkip));
        string[] streamSkip = ["timestamp", "created"];
        Assert.Equal(await Rows("mt_streams", "id", appended, streamSkip), await Rows("mt_streams", "id", copied, streamSkip));
        string[] documentSkip = ["mt_last_modified"];
        Assert.Equal(await Rows("mt_doc_enrolment", "id", appended, documentSkip), await Rows("mt_doc_enrolment", "id", copied, documentSkip));

        // The document's public JSON lacks exactly the internal properties.
        var table = Host.Services.GetRequiredService<EnrolmentTable>();
        var json = System.Text.Json.Nodes.JsonNode.Parse((await table.PublicJson(TenantId, copied, CancellationToken.None))!.Value.Json)!.AsObject();
        Assert.DoesNotContain(json, p => EnrolmentTable.InternalProperties.Contains(p.Key));
        Assert.Contains("schedule", EnrolmentTable.InternalProperties);
        Assert.Contains("completionIds", EnrolmentTable.InternalProperties);
        Assert.Equal("complete", json["status"]!.GetValue<string>());
    }
}
