using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace Enrolment.Api.Infrastructure;

/// <summary>
/// CSV answers (RFC 4180): asked for with <c>Accept: text/csv</c>, a header row then one row per item, CRLF line ends,
/// a field quoted when it holds a comma, a quote, CR or LF (quotes doubled), an absent value empty.
/// </summary>
public static class Csv
{
    public const string MediaType = "text/csv";
    public const string ContentType = "text/csv; charset=utf-8";

    /// <summary>Whether the client asked for CSV: text/csv in Accept, preferred to JSON (which stays the default, and wins a tie).</summary>
    public static bool Wanted(HttpRequest request)
    {
        var accept = request.GetTypedHeaders().Accept;
        double Best(Func<string, bool> matches) => accept.Where(a => matches(a.MediaType.Value ?? "")).Select(a => a.Quality ?? 1).DefaultIfEmpty(0).Max();
        var csv = Best(t => t.Equals(MediaType, StringComparison.OrdinalIgnoreCase));
        var json = Best(t => t.Equals("application/json", StringComparison.OrdinalIgnoreCase));
        return csv > 0 && csv > json;
    }

    /// <summary>
    /// A 200 CSV answer: the header row, then the rows as <paramref name="rows"/> yields them, flushed as they come, so a
    /// list of any length is never held in memory.
    /// </summary>
    public static IResult Answer(string fileName, string header, Func<CancellationToken, IAsyncEnumerable<IReadOnlyList<string?>>> rows) =>
        new CsvAnswer(fileName, header, rows);

    private sealed class CsvAnswer(string fileName, string header, Func<CancellationToken, IAsyncEnumerable<IReadOnlyList<string?>>> rows) : IResult
    {
        public async Task ExecuteAsync(HttpContext http)
        {
            var ct = http.RequestAborted;
            http.Response.StatusCode = StatusCodes.Status200OK;
            http.Response.ContentType = ContentType;
            http.Response.Headers.ContentDisposition = $"attachment; filename=\"{fileName}\"";
            await using var writer = new StreamWriter(http.Response.Body, new System.Text.UTF8Encoding(false), 64 * 1024);
            await WriteRow(writer, header.Split(','));
            var written = 0;
            await foreach (var row in rows(ct))
            {
                await WriteRow(writer, row);
                if (++written % 1_000 == 0) await writer.FlushAsync(ct);
            }
        }
    }

    public static async Task WriteRow(TextWriter writer, IReadOnlyList<string?> fields)
    {
        for (var i = 0; i < fields.Count; i++)
        {
            if (i > 0) await writer.WriteAsync(',');
            await writer.WriteAsync(Field(fields[i]));
        }
        await writer.WriteAsync("\r\n");
    }

    public static string Field(string? value) =>
        value is null ? "" :
        value.AsSpan().IndexOfAny(",\"\r\n") >= 0 ? "\"" + value.Replace("\"", "\"\"") + "\"" : value;
}

/// <summary>
/// Documents a route's <c>text/csv</c> answer (200) in the OpenAPI document: a string whose header row holds these
/// columns, as the route sends with <c>Accept: text/csv</c>.
/// </summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class CsvAnswerAttribute(params string[] columns) : Attribute
{
    public IReadOnlyList<string> Columns { get; } = columns;

    internal static Task Transform(OpenApiOperation operation, OpenApiOperationTransformerContext context, CancellationToken ct)
    {
        if (context.Description.ActionDescriptor.EndpointMetadata.OfType<CsvAnswerAttribute>().FirstOrDefault() is not { } csv) return Task.CompletedTask;
        if (operation.Responses?.TryGetValue("200", out var ok) != true || ok is not OpenApiResponse response) return Task.CompletedTask;
        response.Content ??= new Dictionary<string, OpenApiMediaType>();
        response.Content[Csv.MediaType] = new OpenApiMediaType
        {
            Schema = new OpenApiSchema
            {
                Type = JsonSchemaType.String,
                Description = $"With `Accept: {Csv.MediaType}`: every matching item, no paging (RFC 4180, CRLF line ends, instants as in JSON). Header row: {string.Join(",", csv.Columns)}",
            },
        };
        return Task.CompletedTask;
    }
}
