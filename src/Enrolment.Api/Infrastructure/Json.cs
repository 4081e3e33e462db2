using System.Text.Json;
using System.Text.Json.Serialization;
using NodaTime;
using NodaTime.Serialization.SystemTextJson;
using NodaTime.Text;

namespace Enrolment.Api.Infrastructure;

/// <summary>
/// One set of JSON settings for HTTP, Marten documents and events, and Wolverine messages, so a stored read
/// model can be served as it is: camelCase, lowercase enums, instants as ISO-8601 UTC with milliseconds.
/// </summary>
public static class Json
{
    public static void Configure(JsonSerializerOptions options)
    {
        options.PropertyNamingPolicy = JsonNamingPolicy.CamelCase;
        options.DictionaryKeyPolicy = JsonNamingPolicy.CamelCase;
        options.DefaultIgnoreCondition = JsonIgnoreCondition.Never;
        options.ConfigureForNodaTime(DateTimeZoneProviders.Tzdb);
        // Replace NodaTime's default Instant and Period converters with the contract's formats.
        for (var i = options.Converters.Count - 1; i >= 0; i--)
        {
            var t = options.Converters[i].GetType();
            if (options.Converters[i] is JsonConverter<Instant> or JsonConverter<Period> || t == typeof(NodaPatternConverter<Instant>))
                options.Converters.RemoveAt(i);
        }
        options.Converters.Insert(0, new InstantConverter());
        options.Converters.Insert(0, new PeriodConverter());
        // First, so that it wins over the enum converter Marten adds for its documents: one enum form everywhere.
        options.Converters.Insert(0, new JsonStringEnumConverter(JsonNamingPolicy.CamelCase, allowIntegerValues: false));
    }

    public static readonly JsonSerializerOptions Options = Create();

    private static JsonSerializerOptions Create()
    {
        var o = new JsonSerializerOptions(JsonSerializerDefaults.Web);
        Configure(o);
        return o;
    }

    private static readonly InstantPattern Millis = InstantPattern.CreateWithInvariantCulture("uuuu'-'MM'-'dd'T'HH':'mm':'ss.fff'Z'");

    public static string Format(Instant instant) => Millis.Format(instant);

    /// <summary>An enum value as the API writes it in JSON ("active", "assignment-created"): for CSV cells and SQL over stored JSON.</summary>
    public static string Name(Enum value) => JsonSerializer.Serialize(value, value.GetType(), Options).Trim('"');

    /// <summary>Parses an ISO-8601 instant: UTC with 'Z', or with an explicit offset.</summary>
    public static bool TryParseInstant(string? text, out Instant instant)
    {
        instant = default;
        if (string.IsNullOrWhiteSpace(text) || text.Length > 64) return false;
        var utc = InstantPattern.ExtendedIso.Parse(text);
        if (utc.Success) { instant = utc.Value; return true; }
        var withOffset = OffsetDateTimePattern.ExtendedIso.Parse(text);
        if (withOffset.Success) { instant = withOffset.Value.ToInstant(); return true; }
        return false;
    }

    public static bool TryParsePeriod(string? text, out Period period)
    {
        period = Period.Zero;
        if (string.IsNullOrWhiteSpace(text) || text.Length > 64) return false;
        var result = PeriodPattern.NormalizingIso.Parse(text);
        if (!result.Success) return false;
        period = result.Value;
        return true;
    }

    private sealed class InstantConverter : JsonConverter<Instant>
    {
        public override Instant Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
            reader.TokenType == JsonTokenType.String && TryParseInstant(reader.GetString(), out var instant)
                ? instant
                : throw new JsonException("Expected an ISO-8601 instant such as 2023-08-23T09:09:16.076Z.");

        public override void Write(Utf8JsonWriter writer, Instant value, JsonSerializerOptions options) =>
            writer.WriteStringValue(Format(value));
    }

    private sealed class PeriodConverter : JsonConverter<Period>
    {
        public override Period Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
            reader.TokenType == JsonTokenType.String && TryParsePeriod(reader.GetString(), out var period)
                ? period
                : throw new JsonException("Expected an ISO-8601 period such as P30D, P1M, P1Y or PT30S.");

        public override void Write(Utf8JsonWriter writer, Period value, JsonSerializerOptions options) =>
            writer.WriteStringValue(value.ToString());
    }
}
