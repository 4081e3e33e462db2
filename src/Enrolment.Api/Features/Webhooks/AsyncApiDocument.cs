using Enrolment.Api.Features.Messaging;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Schema;
using System.Text.Json.Serialization.Metadata;
using System.Xml.Linq;
using Enrolment.Api.Infrastructure;
using Enrolment.Contracts;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using Npgsql;
using Wolverine.Http;

namespace Enrolment.Api.Features.Webhooks;

/// <summary>
/// The AsyncAPI 3.0 document of what the service sends and receives asynchronously: the bus (both transports, with the
/// queue, exchange and routing-key names Infrastructure/Bus.cs configures) and webhook deliveries. Payload schemas are
/// generated from the contract records with the JSON settings the bus serialises them with, and their descriptions come
/// from the contracts' XML documentation, so the document cannot drift from what is sent.
/// </summary>
public static class AsyncApiDocument
{
    private static readonly Type[] Outbound = [typeof(EnrolmentStatusChanged), typeof(EnrolmentReminderRecorded)];

    public static JsonObject Build(BusSettings bus, string? databaseConnectionString)
    {
        var docs = ContractDocs.Load(typeof(EnrolmentStatusChanged).Assembly);
        var schemas = new JsonObject();
        foreach (var type in Outbound.Append(typeof(RecordCompletion))) schemas[type.Name] = Schema(type, docs);
        schemas["WebhookHeaders"] = WebhookHeaders();

        var messages = new JsonObject();
        foreach (var type in Outbound.Append(typeof(RecordCompletion)))
            messages[type.Name] = new JsonObject
            {
                ["name"] = type.Name,
                ["title"] = type.Name,
                ["summary"] = docs.Summary(type),
                ["contentType"] = "application/json",
                ["headers"] = BusHeaders(type),
                ["payload"] = Ref($"#/components/schemas/{type.Name}"),
                ["bindings"] = new JsonObject { ["amqp"] = new JsonObject { ["messageType"] = type.FullName, ["bindingVersion"] = "0.3.0" } },
            };
        foreach (var type in Outbound)
            messages["Webhook" + type.Name] = new JsonObject
            {
                ["name"] = type.Name,
                ["title"] = $"{type.Name} (webhook delivery)",
                ["summary"] = docs.Summary(type),
                ["description"] = "An HTTP POST of the bus message's JSON body, signed: x-hmac-signature is \"sha256=\" and the lowercase hex " +
                                  "HMAC-SHA256 of the raw body under the UTF-8 bytes of the webhook's secret. Answer 2xx within 30 s; anything else is " +
                                  "retried with growing pauses (about 10 s first, at most an hour apart) for at least 24 hours, in order per enrolment.",
                ["contentType"] = "application/json",
                ["headers"] = Ref("#/components/schemas/WebhookHeaders"),
                ["payload"] = Ref($"#/components/schemas/{type.Name}"),
            };

        var rabbit = bus.RabbitMq;
        var pg = bus.Postgresql;
        var channels = new JsonObject
        {
            ["statusChanged"] = RabbitRoutingKey(Bus.StatusChangedRoutingKey, rabbit.Exchange, nameof(EnrolmentStatusChanged),
                "Every committed status change, on the topic exchange with this routing key (Bus:Transport=rabbitmq)."),
            ["reminderRecorded"] = RabbitRoutingKey(Bus.ReminderRecordedRoutingKey, rabbit.Exchange, nameof(EnrolmentReminderRecorded),
                "Every committed reminder, on the topic exchange with this routing key (Bus:Transport=rabbitmq)."),
            ["allEvents"] = RabbitQueue(rabbit.AllEventsQueue, "A queue the service binds to the exchange with '#': every event, to look at without writing a consumer.", Outbound.Select(t => t.Name)),
            ["completions"] = RabbitQueue(rabbit.CompletionsQueue, $"Inbound completions; poison messages go to {rabbit.CompletionsDeadLetterQueue} after the retries.", [nameof(RecordCompletion)]),
            ["embeddedEvents"] = Channel(pg.EventsQueue, "postgresql", "The embedded default (Bus:Transport=postgresql): the Wolverine PostgreSQL queue of every integration event.", Outbound.Select(t => t.Name)),
            ["embeddedCompletions"] = Channel(pg.CompletionsQueue, "postgresql", "The embedded default: the Wolverine PostgreSQL queue completions are read from.", [nameof(RecordCompletion)]),
            ["webhookDeliveries"] = new JsonObject
            {
                ["address"] = null, // the url of each webhook, given in POST /webhooks
                ["description"] = "The url given to POST /webhooks. One delivery per event and webhook, for the event types it subscribed to.",
                ["servers"] = new JsonArray(Ref("#/servers/webhookReceiver")),
                ["messages"] = Messages(Outbound.Select(t => "Webhook" + t.Name)),
            },
        };

        var operations = new JsonObject
        {
            ["publishStatusChanged"] = Operation("send", "statusChanged", [nameof(EnrolmentStatusChanged)], "The service publishes every committed status change (at least once, in order per enrolment)."),
            ["publishReminderRecorded"] = Operation("send", "reminderRecorded", [nameof(EnrolmentReminderRecorded)], "The service publishes every committed reminder."),
            ["publishToAllEvents"] = Operation("send", "allEvents", Outbound.Select(t => t.Name), "Every event also lands in the all-events queue."),
            ["receiveCompletion"] = Operation("receive", "completions", [nameof(RecordCompletion)], "The service records completions sent to it (same rules and idempotency as POST /completions)."),
            ["publishEmbedded"] = Operation("send", "embeddedEvents", Outbound.Select(t => t.Name), "The embedded bus's integration events."),
            ["receiveEmbeddedCompletion"] = Operation("receive", "embeddedCompletions", [nameof(RecordCompletion)], "The embedded bus's inbound completions."),
            ["deliverWebhook"] = Operation("send", "webhookDeliveries", Outbound.Select(t => "Webhook" + t.Name), "The service POSTs each event to every webhook that wants its event type."),
        };
        ((JsonObject)operations["deliverWebhook"]!)["bindings"] = new JsonObject { ["http"] = new JsonObject { ["method"] = "POST", ["bindingVersion"] = "0.3.0" } };

        return new JsonObject
        {
            ["asyncapi"] = "3.0.0",
            ["id"] = "urn:enrolment-service:events",
            ["info"] = new JsonObject
            {
                ["title"] = "Enrolment service: bus messages and webhook deliveries",
                ["version"] = "1",
                ["description"] = "Integration events are written in the transaction of their change (rows of the embedded queue, or the outbox for RabbitMQ): an event is sent if and only if its change committed, " +
                                  "at least once and in order per enrolment. Deduplicate on messageId; drop anything with a lower streamVersion than you have.",
            },
            ["defaultContentType"] = "application/json",
            ["servers"] = new JsonObject
            {
                ["rabbitmq"] = new JsonObject
                {
                    ["host"] = RabbitHost(rabbit.Uri), ["protocol"] = "amqp", ["protocolVersion"] = "0.9.1",
                    ["description"] = "The production transport (Bus:Transport=rabbitmq).",
                },
                ["postgresql"] = new JsonObject
                {
                    ["host"] = DatabaseHost(databaseConnectionString), ["protocol"] = "postgresql",
                    ["description"] = "The embedded default (Bus:Transport=postgresql): Wolverine's queues in the service's own database (schema wolverine_queues).",
                },
                ["webhookReceiver"] = new JsonObject
                {
                    ["host"] = "{receiverHost}", ["protocol"] = "https",
                    ["description"] = "A webhook's receiver: the url given to POST /webhooks (https, public).",
                    ["variables"] = new JsonObject { ["receiverHost"] = new JsonObject { ["description"] = "The host (and port) of the webhook's url." } },
                },
            },
            ["channels"] = channels,
            ["operations"] = operations,
            ["components"] = new JsonObject { ["schemas"] = schemas, ["messages"] = messages },
        };
    }

    /// <summary>JSON schema of a contract, as the bus serialises it (camelCase; nullable members may be null), with the XML docs as descriptions.</summary>
    private static JsonNode Schema(Type type, ContractDocs docs)
    {
        var options = new JsonSerializerOptions(Json.Options) { TypeInfoResolver = new DefaultJsonTypeInfoResolver() };
        var schema = options.GetJsonSchemaAsNode(type, new JsonSchemaExporterOptions
        {
            TreatNullObliviousAsNonNullable = true,
            TransformSchemaNode = (context, node) =>
            {
                if (node is not JsonObject o) return node;
                if (context.PropertyInfo is { } property && docs.Parameter(type, property.Name) is { } description) o["description"] = description;
                return node;
            },
        }).AsObject();
        schema["title"] = type.Name;
        if (docs.Summary(type) is { } summary) schema["description"] = summary;
        return schema;
    }

    private static JsonObject BusHeaders(Type type) => new()
    {
        ["type"] = "object",
        ["properties"] = new JsonObject
        {
            ["message-type"] = new JsonObject
            {
                ["type"] = "string", ["const"] = type.FullName,
                ["description"] = "The message type (a Wolverine envelope header; on RabbitMQ the AMQP 'type' property instead).",
            },
            ["tenant-id"] = new JsonObject { ["type"] = "string", ["description"] = "The tenant, also in the body." },
        },
    };

    private static JsonObject WebhookHeaders()
    {
        JsonObject Text(string description, string? pattern = null)
        {
            var o = new JsonObject { ["type"] = "string", ["description"] = description };
            if (pattern is not null) o["pattern"] = pattern;
            return o;
        }
        return new JsonObject
        {
            ["type"] = "object",
            ["required"] = new JsonArray("x-hmac-signature", "x-webhook-id", "x-delivery-id", "x-delivery-attempt"),
            ["properties"] = new JsonObject
            {
                ["x-hmac-signature"] = Text("sha256= and the lowercase hex HMAC-SHA256 of the raw body, keyed with the UTF-8 bytes of the webhook's secret.", "^sha256=[0-9a-f]{64}$"),
                ["x-webhook-id"] = Text("The webhook (id from POST /webhooks)."),
                ["x-delivery-id"] = Text("Stable per event and webhook: the same on every attempt and redelivery. Deduplicate on it (or on messageId)."),
                ["x-delivery-attempt"] = Text("1 on the first attempt; every retry and redelivery adds one.", "^[1-9][0-9]*$"),
                ["x-event-type"] = Text("The body's eventType (enrolment.assigned, enrolment.completed, enrolment.reminded, …)."),
                ["x-message-type"] = Text("The contract type: Enrolment.Contracts.EnrolmentStatusChanged or Enrolment.Contracts.EnrolmentReminderRecorded."),
                ["traceparent"] = Text("W3C trace context of the change that caused the delivery, when the service traces."),
            },
        };
    }

    private static JsonObject RabbitRoutingKey(string routingKey, string exchange, string message, string description) => new()
    {
        ["address"] = routingKey,
        ["description"] = description,
        ["servers"] = new JsonArray(Ref("#/servers/rabbitmq")),
        ["messages"] = Messages([message]),
        ["bindings"] = new JsonObject
        {
            ["amqp"] = new JsonObject
            {
                ["is"] = "routingKey",
                ["exchange"] = new JsonObject { ["name"] = exchange, ["type"] = "topic", ["durable"] = true, ["autoDelete"] = false, ["vhost"] = "/" },
                ["bindingVersion"] = "0.3.0",
            },
        },
    };

    private static JsonObject RabbitQueue(string queue, string description, IEnumerable<string> messages) => new()
    {
        ["address"] = queue,
        ["description"] = description,
        ["servers"] = new JsonArray(Ref("#/servers/rabbitmq")),
        ["messages"] = Messages(messages),
        ["bindings"] = new JsonObject
        {
            ["amqp"] = new JsonObject
            {
                ["is"] = "queue",
                ["queue"] = new JsonObject { ["name"] = queue, ["durable"] = true, ["exclusive"] = false, ["autoDelete"] = false, ["vhost"] = "/" },
                ["bindingVersion"] = "0.3.0",
            },
        },
    };

    private static JsonObject Channel(string address, string server, string description, IEnumerable<string> messages) => new()
    {
        ["address"] = address,
        ["description"] = description,
        ["servers"] = new JsonArray(Ref($"#/servers/{server}")),
        ["messages"] = Messages(messages),
    };

    private static JsonObject Messages(IEnumerable<string> names)
    {
        var o = new JsonObject();
        foreach (var name in names) o[name] = Ref($"#/components/messages/{name}");
        return o;
    }

    private static JsonObject Operation(string action, string channel, IEnumerable<string> messages, string summary) => new()
    {
        ["action"] = action,
        ["channel"] = Ref($"#/channels/{channel}"),
        ["summary"] = summary,
        ["messages"] = new JsonArray(messages.Select(m => (JsonNode)Ref($"#/channels/{channel}/messages/{m}")).ToArray()),
    };

    private static JsonObject Ref(string pointer) => new() { ["$ref"] = pointer };

    // Host and port only: never the credentials of either URI.
    private static string RabbitHost(string uri) => Uri.TryCreate(uri, UriKind.Absolute, out var u) ? $"{u.Host}:{(u.Port > 0 ? u.Port : 5672)}" : "localhost:5672";

    private static string DatabaseHost(string? connectionString)
    {
        try
        {
            var b = new NpgsqlConnectionStringBuilder(connectionString ?? "");
            return $"{b.Host ?? "localhost"}:{b.Port}";
        }
        catch (ArgumentException) { return "localhost:5432"; }
    }

    /// <summary>The contracts' XML documentation (shipped beside the assembly), read for summaries and record parameters.</summary>
    private sealed class ContractDocs(Dictionary<string, XElement> members)
    {
        public static ContractDocs Load(Assembly assembly)
        {
            var path = Path.ChangeExtension(assembly.Location, ".xml");
            if (!File.Exists(path)) return new ContractDocs([]);
            var doc = XDocument.Load(path);
            return new ContractDocs(doc.Descendants("member").Where(m => m.Attribute("name") is not null)
                .ToDictionary(m => m.Attribute("name")!.Value, m => m));
        }

        public string? Summary(Type type) => Clean(members.GetValueOrDefault("T:" + type.FullName)?.Element("summary"));

        public string? Parameter(Type type, string jsonName) =>
            Clean(members.GetValueOrDefault("T:" + type.FullName)?.Elements("param")
                .FirstOrDefault(p => string.Equals(p.Attribute("name")?.Value, jsonName, StringComparison.OrdinalIgnoreCase)));

        // <see cref="X"/> becomes X's short name; whitespace is collapsed.
        private static string? Clean(XElement? element)
        {
            if (element is null) return null;
            var text = string.Concat(element.Nodes().Select(n => n is XElement e && e.Attribute("cref") is { } cref ? cref.Value[(cref.Value.LastIndexOf('.') + 1)..] : n is XText t ? t.Value : ""));
            return string.Join(' ', text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));
        }
    }
}

public static class GetAsyncApiDocumentEndpoint
{
    [ProducesResponseType<AsyncApiDocumentShape>(StatusCodes.Status200OK, "application/json")]
    [WolverineGet("/asyncapi/v1.json", OperationId = "getAsyncApiDocument"), AllowAnonymous]
    [Tags("Documents")]
    [EndpointSummary("The AsyncAPI 3.0 document of the bus messages (both transports) and the webhook deliveries, generated from the contract types.")]
    public static IResult Get(IConfiguration configuration) =>
        // Built per request (about a millisecond): it always shows the running configuration.
        Results.Text(AsyncApiDocument.Build(configuration.GetSection("Bus").Get<BusSettings>() ?? new BusSettings(),
                configuration.GetConnectionString(Persistence.ConnectionStringName)).ToJsonString(new JsonSerializerOptions { WriteIndented = true }),
            "application/json; charset=utf-8");
}

/// <summary>The AsyncAPI document's top level, for the OpenAPI document only (the AsyncAPI 3.0 specification defines the rest).</summary>
public sealed record AsyncApiDocumentShape(
    [property: System.ComponentModel.Description("The AsyncAPI version: 3.0.0.")] string Asyncapi,
    string Id, JsonObject Info, string DefaultContentType, JsonObject Servers, JsonObject Channels, JsonObject Operations, JsonObject Components);
