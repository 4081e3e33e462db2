using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.RegularExpressions;
using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Auth;
using JasperFx;
using Marten;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;
using NodaTime;

namespace Enrolment.Api.Features.Mimecast;

/// <summary>
/// An x-mc-req-id already accepted for an access key. Inserted (never upserted) after the signature verified, so a
/// second request with the same id fails on the primary key, on whichever node it lands. Kept for
/// <see cref="MimecastSettings.ReplayWindow"/>, then removed by <see cref="SeenRequestCleanup"/>.
/// </summary>
public sealed class MimecastSeenRequest
{
    /// <summary>"{accessKey}/{x-mc-req-id}".</summary>
    public string Id { get; set; } = "";
    public DateTimeOffset ExpiresAt { get; set; }
}

/// <summary>Why a request was refused: the status and the fail[] error of the Mimecast-style answer.</summary>
public sealed record MimecastAuthFailure(int Status, string Code, string Message);

/// <summary>
/// Mimecast API 1.0 request signing: <c>Authorization: MC {accessKey}:{signature}</c> where signature =
/// Base64(HMAC-SHA1(Base64Decode(secretKey), "{x-mc-date}:{x-mc-req-id}:{path}:{appKey}")), with x-mc-date within the
/// allowed skew of the service clock, x-mc-req-id never seen before for that key, and x-mc-app-id the key's app id.
/// The tenant is the one the access key was issued to. Cheap checks come first; the request id is spent only once
/// everything else verified, so a refused request does not burn it.
/// </summary>
public sealed partial class MimecastAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory logger,
    UrlEncoder encoder,
    IDocumentStore store,
    IClock clock,
    MimecastSecretCipher cipher,
    IMemoryCache cache,
    IOptions<MimecastSettings> settings) : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "Mimecast";
    public const string AccessKeyClaim = "mimecast-access-key";
    public const string Realm = "MC";
    private const string FailureItem = "mimecast.auth-failure";

    // x-mc-date as Mimecast documents it ("Tue, 24 Nov 2015 12:50:11 UTC") and as RFC 1123 writes it ("... GMT").
    private static readonly string[] DateFormats =
    [
        "ddd, dd MMM yyyy HH:mm:ss 'UTC'", "ddd, dd MMM yyyy HH:mm:ss 'GMT'",
        "ddd, d MMM yyyy HH:mm:ss 'UTC'", "ddd, d MMM yyyy HH:mm:ss 'GMT'",
    ];

    [GeneratedRegex(@"^[\x21-\x7E]{1,128}\z", RegexOptions.CultureInvariant)]
    private static partial Regex RequestIdPattern();

    [GeneratedRegex(@"^[A-Za-z0-9_-]{1,128}\z", RegexOptions.CultureInvariant)]
    private static partial Regex AccessKeyPattern();

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var client = Context.Connection.RemoteIpAddress?.ToString() ?? "unknown";
        if (ClientFailures.BlockedFor(cache, SchemeName, client, settings.Value.MaxFailuresPerClientPerMinute) is { } retryAfter)
        {
            Response.Headers.RetryAfter = retryAfter.ToString(System.Globalization.CultureInfo.InvariantCulture);
            return Refuse(new MimecastAuthFailure(StatusCodes.Status429TooManyRequests, MimecastCodes.TooManyFailures,
                $"Too many failed authentications from this client. Try again in {retryAfter} seconds."));
        }

        var (principal, failure) = await Verify();
        if (principal is not null) return AuthenticateResult.Success(new AuthenticationTicket(principal, SchemeName));

        ClientFailures.Record(cache, SchemeName, client);
        Logger.LogWarning("Mimecast authentication failed for a request from {Client}: {Code}", client, failure!.Code);
        return Refuse(failure);
    }

    private AuthenticateResult Refuse(MimecastAuthFailure failure)
    {
        Context.Items[FailureItem] = failure;
        return AuthenticateResult.Fail(failure.Message);
    }

    private async Task<(ClaimsPrincipal? Principal, MimecastAuthFailure? Failure)> Verify()
    {
        static (ClaimsPrincipal?, MimecastAuthFailure?) Unauthorized(string code, string message) =>
            (null, new MimecastAuthFailure(StatusCodes.Status401Unauthorized, code, message));

        var authorization = Single("Authorization");
        if (authorization is null)
            return Unauthorized(MimecastCodes.MissingHeader, "The Authorization header is missing: send Authorization: MC {accessKey}:{signature}.");
        var space = authorization.IndexOf(' ');
        if (space <= 0 || !string.Equals(authorization[..space], Realm, StringComparison.OrdinalIgnoreCase))
            return Unauthorized(MimecastCodes.AuthorizationMalformed,
                "This route accepts only Mimecast request signing (Authorization: MC {accessKey}:{signature}); other schemes, HTTP Basic included, are not accepted here.");
        var credentials = authorization[(space + 1)..].Trim();
        var colon = credentials.IndexOf(':');
        if (colon <= 0 || colon == credentials.Length - 1)
            return Unauthorized(MimecastCodes.AuthorizationMalformed, "The Authorization header must read MC {accessKey}:{signature}.");
        var accessKey = credentials[..colon];
        var signature = credentials[(colon + 1)..];

        foreach (var name in (string[])["x-mc-date", "x-mc-req-id", "x-mc-app-id"])
            if (Single(name) is null)
                return Unauthorized(MimecastCodes.MissingHeader, $"The {name} header is missing (or sent more than once).");
        var date = Single("x-mc-date")!;
        var requestId = Single("x-mc-req-id")!;
        var appId = Single("x-mc-app-id")!;

        if (!TryParseDate(date, out var sentAt))
            return Unauthorized(MimecastCodes.InvalidDate, "x-mc-date must be an RFC 1123 date such as 'Tue, 24 Nov 2015 12:50:11 UTC'.");
        var now = clock.GetCurrentInstant();
        var skew = Duration.FromTimeSpan(settings.Value.AllowedClockSkew);
        if (sentAt < now - skew || sentAt > now + skew)
            return Unauthorized(MimecastCodes.DateOutOfRange,
                $"x-mc-date is more than {settings.Value.AllowedClockSkew.TotalMinutes:0} minutes away from the service clock; sign each request with the current time.");
        if (!RequestIdPattern().IsMatch(requestId))
            return Unauthorized(MimecastCodes.InvalidRequestId, "x-mc-req-id must be 1–128 visible ASCII characters, for example a GUID.");

        if (!AccessKeyPattern().IsMatch(accessKey))
            return Unauthorized(MimecastCodes.UnknownAccessKey, "The access key is unknown or revoked.");
        MimecastKey? key;
        await using (var session = await store.QueryHome())
            key = await session.LoadAsync<MimecastKey>(accessKey, Context.RequestAborted);
        if (key is null || key.RevokedAt is not null)
            return Unauthorized(MimecastCodes.UnknownAccessKey, "The access key is unknown or revoked.");

        var secret = cipher.Decrypt(key.Id, key.EncryptedSecretKey)
            ?? throw new InvalidOperationException($"The secret key of Mimecast access key {key.Id} does not decrypt: Mimecast:KeyEncryptionKey is not the key it was issued under.");
        try
        {
            if (!SignatureMatches(secret, $"{date}:{requestId}:{(Request.PathBase + Request.Path).Value}:{key.AppKey}", signature))
                return Unauthorized(MimecastCodes.InvalidSignature,
                    "The signature does not match: sign '{x-mc-date}:{x-mc-req-id}:{path}:{appKey}' with HMAC-SHA1 keyed by the Base64-decoded secret key, then Base64-encode it.");
        }
        finally
        {
            CryptographicOperations.ZeroMemory(secret);
        }
        if (!string.Equals(appId, key.AppId, StringComparison.OrdinalIgnoreCase))
            return Unauthorized(MimecastCodes.AppIdMismatch, "x-mc-app-id is not the application id issued with this access key.");

        if (!await SpendRequestId(key.Id, requestId, now))
            return Unauthorized(MimecastCodes.RequestIdReused, "This x-mc-req-id was already used: send a new unique id (a fresh GUID) with every request.");

        var identity = new ClaimsIdentity(
            [new Claim(BasicAuthenticationHandler.TenantClaim, key.TenantId), new Claim(ClaimTypes.Name, key.TenantId), new Claim(AccessKeyClaim, key.Id)],
            SchemeName);
        return (new ClaimsPrincipal(identity), null);
    }

    /// <summary>Constant time in the signature's content: every byte is compared whatever the first mismatch.</summary>
    public static bool SignatureMatches(byte[] secret, string dataToSign, string presented)
    {
        var expected = HMACSHA1.HashData(secret, Encoding.UTF8.GetBytes(dataToSign));
        Span<byte> actual = stackalloc byte[64];
        if (presented.Length > 88 || !Convert.TryFromBase64String(presented, actual, out var written)) return false;
        return written == expected.Length && CryptographicOperations.FixedTimeEquals(expected, actual[..written]);
    }

    public static bool TryParseDate(string text, out Instant instant)
    {
        instant = default;
        if (text.Length > 64 || !DateTimeOffset.TryParseExact(text.Trim(), DateFormats, System.Globalization.CultureInfo.InvariantCulture,
                System.Globalization.DateTimeStyles.AssumeUniversal | System.Globalization.DateTimeStyles.AdjustToUniversal, out var parsed))
            return false;
        instant = Instant.FromDateTimeOffset(parsed);
        return true;
    }

    private async Task<bool> SpendRequestId(string accessKey, string requestId, Instant now)
    {
        await using var session = await store.OpenHome();
        session.Insert(new MimecastSeenRequest
        {
            Id = accessKey + "/" + requestId,
            ExpiresAt = (now + Duration.FromTimeSpan(settings.Value.ReplayWindow)).ToDateTimeOffset(),
        });
        try
        {
            await session.SaveChangesAsync(Context.RequestAborted);
            return true;
        }
        catch (DocumentAlreadyExistsException)
        {
            return false;
        }
    }

    private string? Single(string header) =>
        Request.Headers.TryGetValue(header, out var values) && values.Count == 1 && !string.IsNullOrWhiteSpace(values[0]) ? values[0] : null;

    protected override Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        var failure = Context.Items.TryGetValue(FailureItem, out var item) && item is MimecastAuthFailure f
            ? f
            : new MimecastAuthFailure(StatusCodes.Status401Unauthorized, MimecastCodes.MissingHeader, "This route needs Mimecast request signing: Authorization: MC {accessKey}:{signature}.");
        if (failure.Status == StatusCodes.Status401Unauthorized)
            Response.Headers.WWWAuthenticate = Realm;
        return MimecastEnvelope.Error(failure.Status, failure.Code, failure.Message).WriteAsync(Context);
    }

    protected override Task HandleForbiddenAsync(AuthenticationProperties properties) =>
        MimecastEnvelope.Error(StatusCodes.Status403Forbidden, "err_xdk_forbidden", "This key may not call this route.").WriteAsync(Context);
}

/// <summary>Removes seen request ids whose replay window has passed. Any node may run it; deleting twice is harmless.</summary>
public sealed class SeenRequestCleanup(IDocumentStore store, IClock clock, ILogger<SeenRequestCleanup> logger) : BackgroundService
{
    public static readonly TimeSpan Interval = TimeSpan.FromMinutes(5);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                var now = clock.GetCurrentInstant().ToDateTimeOffset();
                await using var session = await store.OpenHome();
                session.DeleteWhere<MimecastSeenRequest>(r => r.ExpiresAt < now);
                await session.SaveChangesAsync(stoppingToken);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                logger.LogWarning(e, "Removing expired Mimecast request ids failed; retrying in {Interval}", Interval);
            }
        }
    }
}
