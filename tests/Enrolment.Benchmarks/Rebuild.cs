using System.Diagnostics;
using System.Text.Json;
using Enrolment.Api.Infrastructure;
using Npgsql;

namespace Enrolment.Benchmarks;

/// <summary>
/// Comparison 6's baseline: read every enrolment event in sequence order, in pages, and deserialise each into its
/// .NET type with the service's own JSON settings — what a projection rebuild cannot avoid doing, without the
/// folding and the writing of documents.
/// </summary>
public static class Rebuild
{
    public static async Task<int> Baseline(Options options)
    {
        var page = options.Int("page", 10_000);
        await using var dataSource = NpgsqlDataSource.Create(options.Get("connection"));
        var types = new Dictionary<string, Type>();
        var clock = Stopwatch.StartNew();
        long events = 0, last = 0, checksum = 0;
        while (true)
        {
            await using var cmd = dataSource.CreateCommand(
                "select seq_id, mt_dotnet_type, data from enrolment.mt_events where seq_id > $1 and type not like 'assignment%' order by seq_id limit $2");
            cmd.Parameters.Add(new NpgsqlParameter { Value = last });
            cmd.Parameters.Add(new NpgsqlParameter { Value = page });
            var read = 0;
            await using (var reader = await cmd.ExecuteReaderAsync())
            {
                while (await reader.ReadAsync())
                {
                    last = reader.GetInt64(0);
                    var typeName = reader.GetString(1);
                    if (!types.TryGetValue(typeName, out var type))
                        types[typeName] = type = Type.GetType(typeName) ?? throw new InvalidOperationException($"unknown event type {typeName}");
                    var e = JsonSerializer.Deserialize(reader.GetString(2), type, Json.Options);
                    checksum += e is null ? 0 : 1;
                    read++;
                }
            }
            events += read;
            if (read < page) break;
        }
        var seconds = clock.Elapsed.TotalSeconds;
        Console.Out.WriteLine(JsonSerializer.Serialize(new { events, deserialised = checksum, seconds, eventsPerSecond = events / seconds }));
        return 0;
    }
}
