using Enrolment.Api.Features.Messaging;
using Enrolment.Api.Infrastructure;
using JasperFx.CommandLine;
using Marten;
using Npgsql;
using RabbitMQ.Client;

namespace Enrolment.Api.Features.DeadLetters;

public sealed class DeadLettersInput : NetCoreInput
{
    [Description("list | replay")]
    public string Action { get; set; } = "list";
}

/// <summary>
/// Inbound messages that could not be processed (malformed JSON, invalid fields, unknown tenant) are dead-lettered,
/// never lost. `dead-letters list` shows them; `dead-letters replay` sends them back to be processed again, for
/// example after fixing the tenant they name. RabbitMQ: the queue Bus:RabbitMq:CompletionsDeadLetterQueue.
/// Embedded bus: Wolverine's wolverine_dead_letters table (replayed by marking rows replayable).
/// </summary>
[Description("List or replay dead-lettered inbound messages", Name = "dead-letters")]
public sealed class DeadLettersCommand : JasperFxAsyncCommand<DeadLettersInput>
{
    public DeadLettersCommand()
    {
        Usage("List or replay").Arguments(x => x.Action);
    }

    public override async Task<bool> Execute(DeadLettersInput input)
    {
        using var host = input.BuildHost();
        var configuration = host.Services.GetRequiredService<IConfiguration>();
        var settings = configuration.GetSection("Bus").Get<BusSettings>() ?? new BusSettings();
        if (input.Action is not ("list" or "replay")) { Console.Error.WriteLine("Use `dead-letters list` or `dead-letters replay`."); return false; }

        if (settings.Transport.Equals("rabbitmq", StringComparison.OrdinalIgnoreCase))
            return await RabbitMq(settings.RabbitMq, input.Action == "replay");

        var store = host.Services.GetRequiredService<IDocumentStore>();
        var table = $"{store.Options.DatabaseSchemaName}.wolverine_dead_letters";
        // Wolverine keeps dead letters in the master (messages of no tenant) and in each shard (its tenants' messages).
        // In the embedded pool of one the master is the shard `default`: each physical database is read once.
        var databases = new List<(string Name, NpgsqlDataSource Source)> { ("master", host.Services.GetRequiredService<NpgsqlDataSource>()) };
        foreach (var shard in await store.Shards()) databases.Add(("shard " + TenantPool.ShardName(shard), TenantPool.DataSourceOf(shard)));
        var seen = new HashSet<string>();
        var count = 0;
        foreach (var (name, source) in databases)
        {
            var physical = new NpgsqlConnectionStringBuilder(source.ConnectionString);
            if (!seen.Add($"{physical.Host}:{physical.Port}/{physical.Database}")) continue;
            await using var connection = await source.OpenConnectionAsync();
            if (input.Action == "replay")
            {
                await using var replay = new NpgsqlCommand($"update {table} set replayable = true where replayable is not true", connection);
                Console.Out.WriteLine($"{name}: marked {await replay.ExecuteNonQueryAsync()} dead letters for replay; a running service picks them up within seconds.");
                continue;
            }
            await using var list = new NpgsqlCommand($"select id, message_type, exception_type, exception_message, failed_at from {table} order by failed_at", connection);
            await using var reader = await list.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                count++;
                Console.Out.WriteLine($"{reader.GetGuid(0)}\t{reader.GetString(1)}\t{(reader.IsDBNull(2) ? "" : reader.GetString(2))}\t{(reader.IsDBNull(3) ? "" : reader.GetString(3))}\t{name}");
            }
        }
        if (input.Action == "list") Console.Out.WriteLine($"{count} dead letters in {table} of the master and every shard.");
        return true;
    }

    private static async Task<bool> RabbitMq(RabbitMqBusSettings settings, bool replay)
    {
        var factory = new ConnectionFactory { Uri = new Uri(settings.Uri) };
        await using var connection = await factory.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        var moved = 0;
        var seen = 0;
        while (await channel.BasicGetAsync(settings.CompletionsDeadLetterQueue, autoAck: false) is { } message)
        {
            seen++;
            var headers = message.BasicProperties.Headers;
            string Header(string key) => headers is not null && headers.TryGetValue(key, out var v) && v is byte[] b ? System.Text.Encoding.UTF8.GetString(b) : "";
            Console.Out.WriteLine($"{message.BasicProperties.MessageId}\t{Header("exception-type")}\t{Header("exception-message")}");
            if (replay)
            {
                // A new message id: the service's durable inbox would otherwise recognise the id and drop the replay.
                var properties = new BasicProperties(message.BasicProperties) { MessageId = Guid.NewGuid().ToString() };
                await channel.BasicPublishAsync("", settings.CompletionsQueue, mandatory: false, properties, message.Body);
                await channel.BasicAckAsync(message.DeliveryTag, multiple: false);
                moved++;
            }
        }
        // Listing takes messages without acknowledging them: closing the channel puts them back in order.
        Console.Out.WriteLine(replay
            ? $"Replayed {moved} dead letters from {settings.CompletionsDeadLetterQueue} to {settings.CompletionsQueue}."
            : $"{seen} dead letters in {settings.CompletionsDeadLetterQueue}.");
        return true;
    }
}
