namespace Enrolment.Api.Infrastructure;

/// <summary>
/// The documented header limit (Limits:MaxRequestHeadersBytes, 32 KiB) answered with a problem document like every other
/// error. Kestrel checks its own limit while it parses, before any middleware, and can only answer an empty 431; so its
/// limit is set to twice the documented one as a backstop, and this middleware enforces the documented one.
/// </summary>
public static class RequestLimits
{
    public const int DefaultMaxRequestHeadersBytes = 32 * 1024;

    public static int MaxRequestHeadersBytes(IConfiguration configuration) =>
        configuration.GetValue("Limits:MaxRequestHeadersBytes", DefaultMaxRequestHeadersBytes);

    /// <summary>The headers' size as sent: name, ": ", value and CRLF per header line.</summary>
    public static long HeaderBytes(IHeaderDictionary headers)
    {
        long total = 0;
        foreach (var (name, values) in headers)
            foreach (var value in values)
                total += name.Length + (value?.Length ?? 0) + 4;
        return total;
    }

    public static void UseRequestHeaderLimit(this WebApplication app)
    {
        var limit = MaxRequestHeadersBytes(app.Configuration);
        app.Use(async (context, next) =>
        {
            if (HeaderBytes(context.Request.Headers) <= limit)
            {
                await next(context);
                return;
            }
            await Problems.Make(StatusCodes.Status431RequestHeaderFieldsTooLarge, "headers-too-large", "Request headers too large.",
                $"The request headers exceed {limit} bytes (Limits:MaxRequestHeadersBytes).").ExecuteAsync(context);
        });
    }
}
