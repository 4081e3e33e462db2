using Enrolment.Api.Infrastructure;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Alba;
using Enrolment.Api.Features.Mimecast;
using Enrolment.Domain;
using Marten;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using NodaTime;
using NodaTime.Testing;

namespace Enrolment.Api.Tests;

/// <summary>
/// POST /api/awareness-training/user/get-training-details: Mimecast API 1.0 request signing and the training envelope.
/// Requests are signed here by the test's own HMAC code (<see cref="TestSigner"/>), checked against a vector computed
/// by hand with openssl and python, never by the service's verifier.
/// </summary>
public sealed class MimecastTests(AppFixture fixture) : ScenarioTest(fixture)
{
    private const string Route = "/api/awareness-training/user/get-training-details";

    /// <summary>A key set as a Mimecast client holds it.</summary>
    private sealed record MimecastClient(string AccessKey, string SecretKey, string AppId, string AppKey);

    /// <summary>
    /// Computed outside .NET, by hand:
    ///   printf '%s' "$DATA" | openssl dgst -sha1 -mac HMAC -macopt hexkey:000102…1f -binary | base64
    ///   python3: base64.b64encode(hmac.new(base64.b64decode(secret), data.encode(), hashlib.sha1).digest())
    /// Both print the same signature.
    /// </summary>
    private static class KnownVector
    {
        public const string SecretKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="; // the bytes 0x00..0x1f
        public const string Date = "Tue, 24 Nov 2015 12:50:11 UTC";
        public const string RequestId = "8578FCFC-A305-4D9A-99CB-F4D5ECEFE297";
        public const string AppKey = "f1b7c1a2-5d3e-4c6b-9a8f-0e1d2c3b4a59";
        public const string AppId = "0b5c6d7e-8f90-4a1b-8c2d-3e4f5a6b7c8d";
        public const string AccessKey = "mcknownvector";
        public const string DataToSign = Date + ":" + RequestId + ":" + Route + ":" + AppKey;
        public const string Signature = "CW2p4Ai2D79gbpOd/gui5dqDyRg=";
        public static readonly Instant At = Instant.FromUtc(2015, 11, 24, 12, 50, 11);
    }

    /// <summary>The test's own implementation of Mimecast's signing, as their published sample code does it.</summary>
    private static class TestSigner
    {
        public static string Sign(string secretKeyBase64, string dataToSign)
        {
            using var hmac = new HMACSHA1(Convert.FromBase64String(secretKeyBase64));
            return Convert.ToBase64String(hmac.ComputeHash(Encoding.UTF8.GetBytes(dataToSign)));
        }

        public static string Date(DateTimeOffset at) =>
            at.UtcDateTime.ToString("ddd, dd MMM yyyy HH:mm:ss", CultureInfo.InvariantCulture) + " UTC";

        public static Dictionary<string, string?> Headers(MimecastClient key, DateTimeOffset at, string requestId, string path = Route)
        {
            var date = Date(at);
            return new Dictionary<string, string?>
            {
                ["Authorization"] = $"MC {key.AccessKey}:{Sign(key.SecretKey, $"{date}:{requestId}:{path}:{key.AppKey}")}",
                ["x-mc-date"] = date,
                ["x-mc-req-id"] = requestId,
                ["x-mc-app-id"] = key.AppId,
            };
        }
    }

    private static string NewRequestId() => Guid.NewGuid().ToString().ToUpperInvariant();

    private static readonly string AllUsers = "{\"data\":[]}";

    private static string Users(params object[] items) => JsonSerializer.Serialize(new { data = items });

    // ---------------------------------------------------------------- plumbing

    private async Task<MimecastClient> IssueKey(string tenantId = TenantId, IAlbaHost? host = null)
    {
        host ??= Host;
        await using var session = await host.Services.GetRequiredService<IDocumentStore>().OpenHome();
        var issued = MimecastKeys.Issue(session, host.Services.GetRequiredService<MimecastSecretCipher>(), tenantId, SystemClock.Instance.GetCurrentInstant());
        await session.SaveChangesAsync();
        return new MimecastClient(issued.AccessKey, issued.SecretKey, issued.AppId, issued.AppKey);
    }

    /// <summary>Stores the known vector's key set (its secret encrypted by the service's cipher) for this tenant.</summary>
    private async Task<MimecastClient> StoreKnownVectorKey(IAlbaHost host)
    {
        var cipher = host.Services.GetRequiredService<MimecastSecretCipher>();
        await using var session = await host.Services.GetRequiredService<IDocumentStore>().OpenHome();
        session.Store(new MimecastKey
        {
            Id = KnownVector.AccessKey, TenantId = TenantId, AppId = KnownVector.AppId, AppKey = KnownVector.AppKey,
            EncryptedSecretKey = cipher.Encrypt(KnownVector.AccessKey, Convert.FromBase64String(KnownVector.SecretKey)),
            CreatedAt = KnownVector.At,
        });
        await session.SaveChangesAsync();
        return new MimecastClient(KnownVector.AccessKey, KnownVector.SecretKey, KnownVector.AppId, KnownVector.AppKey);
    }

    /// <summary>A second host on the same database whose service clock is a fake one the test sets.</summary>
    private static async Task<(IAlbaHost Host, FakeClock Clock)> StartClockHost(Instant now)
    {
        var clock = new FakeClock(now);
        var host = await AppFixture.StartHost(transitions: false, b => b.ConfigureTestServices(s => s.AddSingleton<IClock>(clock)));
        return (host, clock);
    }

    /// <summary>Sends the request with exactly these headers, from a fresh client address unless one is given.</summary>
    private static async Task<ApiResponse> Send(IAlbaHost host, IReadOnlyDictionary<string, string?> headers, string body, IPAddress? client = null)
    {
        client ??= IPAddress.Parse(Scenarios.RandomIp());
        var result = await host.Scenario(s =>
        {
            s.Post.RawJson(body).ToUrl(Route);
            foreach (var (name, value) in headers)
                if (value is not null) s.WithRequestHeader(name, value);
            s.ConfigureHttpContext(c => c.Connection.RemoteIpAddress = client);
            s.IgnoreStatusCode();
        });
        return new ApiResponse(result.Context.Response.StatusCode, result.Context.Response.Headers, await result.ReadAsTextAsync());
    }

    private Task<ApiResponse> Call(MimecastClient key, string? body = null, DateTimeOffset? at = null, string? requestId = null,
        Action<Dictionary<string, string?>>? change = null, IPAddress? client = null)
    {
        var headers = TestSigner.Headers(key, at ?? DateTimeOffset.UtcNow, requestId ?? NewRequestId());
        change?.Invoke(headers);
        return Send(Host, headers, body ?? AllUsers, client);
    }

    /// <summary>A 200 envelope: meta.status 200, data and fail arrays.</summary>
    private static JsonNode AssertOk(ApiResponse response)
    {
        Assert.True(response.Status == 200, $"Expected 200, got {response}");
        Assert.StartsWith("application/json", response.ContentType);
        var json = response.Json;
        Assert.Equal(200, json["meta"]!["status"]!.GetValue<int>());
        Assert.IsType<JsonArray>(json["data"]);
        Assert.IsType<JsonArray>(json["fail"]);
        return json;
    }

    /// <summary>A Mimecast-style refusal: this HTTP status, meta.status the same, no data, one fail with one non-retryable error.</summary>
    private static JsonNode AssertRefused(ApiResponse response, int status, string code)
    {
        Assert.True(response.Status == status, $"Expected {status} {code}, got {response}");
        Assert.StartsWith("application/json", response.ContentType);
        var json = response.Json;
        Assert.Equal(status, json["meta"]!["status"]!.GetValue<int>());
        Assert.Empty(json["data"]!.AsArray());
        var error = Assert.Single(Assert.Single(json["fail"]!.AsArray())!["errors"]!.AsArray())!;
        Assert.Equal(code, error.Str("code"));
        Assert.False(string.IsNullOrWhiteSpace(error.Str("message")));
        Assert.False(error["retryable"]!.GetValue<bool>());
        return json;
    }

    private static JsonNode DataFor(JsonNode envelope, string userId) =>
        Assert.Single(envelope["data"]!.AsArray(), d => d.Str("userId") == userId)!;

    private static JsonNode Badge(JsonNode user) => user["meritBadge"]!;

    private static void AssertBadge(JsonNode user, bool earned, int streak, int onTime, int late)
    {
        var badge = Badge(user);
        Assert.True(earned == badge["earned"]!.GetValue<bool>(), $"earned should be {earned}: {badge.ToJsonString()}");
        Assert.Equal(streak, badge["currentStreak"]!.GetValue<int>());
        Assert.Equal(onTime, badge["onTimeCompletions"]!.GetValue<int>());
        Assert.Equal(late, badge["lateCompletions"]!.GetValue<int>());
    }

    private static string[] Keys(JsonNode node) => node.AsObject().Select(p => p.Key).Order(StringComparer.Ordinal).ToArray();

    // ---------------------------------------------------------------- signature vectors

    [Fact]
    public async Task Answers_carry_the_rate_limit_in_the_IETF_names_and_in_Mimecasts_own_with_milliseconds()
    {
        var key = await IssueKey();
        var response = await Call(key);
        AssertOk(response);
        Assert.Equal("1000", response.Headers["X-RateLimit-Limit"].ToString());
        Assert.InRange(int.Parse(response.Headers["X-RateLimit-Remaining"]!), 0, 1000);
        Assert.Equal("1000", response.Headers["X-RateLimit-Reset"].ToString());
        Assert.Equal("1000", response.Headers["RateLimit-Limit"].ToString());
        Assert.Equal("1", response.Headers["RateLimit-Reset"].ToString());
    }

    [Fact]
    public void The_test_signer_reproduces_the_signature_computed_by_hand_with_openssl()
    {
        Assert.Equal(KnownVector.Signature, TestSigner.Sign(KnownVector.SecretKey, KnownVector.DataToSign));
        Assert.Equal(KnownVector.Date, TestSigner.Date(KnownVector.At.ToDateTimeOffset()));
    }

    [Fact]
    public void The_service_accepts_the_hand_computed_signature_and_nothing_that_differs_from_it()
    {
        var secret = Convert.FromBase64String(KnownVector.SecretKey);
        Assert.True(MimecastAuthenticationHandler.SignatureMatches(secret, KnownVector.DataToSign, KnownVector.Signature));

        Assert.False(MimecastAuthenticationHandler.SignatureMatches(secret, KnownVector.DataToSign.Replace("12:50:11", "12:50:12"), KnownVector.Signature));
        Assert.False(MimecastAuthenticationHandler.SignatureMatches(secret, KnownVector.DataToSign, "DW2p4Ai2D79gbpOd/gui5dqDyRg="));
        Assert.False(MimecastAuthenticationHandler.SignatureMatches(secret, KnownVector.DataToSign, KnownVector.Signature[..20]));
        Assert.False(MimecastAuthenticationHandler.SignatureMatches(secret, KnownVector.DataToSign, "not base64 at all!"));
        var otherSecret = (byte[])secret.Clone();
        otherSecret[0] ^= 1;
        Assert.False(MimecastAuthenticationHandler.SignatureMatches(otherSecret, KnownVector.DataToSign, KnownVector.Signature));
    }

    [Fact]
    public async Task A_request_signed_exactly_as_the_hand_computed_vector_is_accepted_when_the_service_clock_reads_its_date_and_only_once()
    {
        var (host, _) = await StartClockHost(KnownVector.At);
        try
        {
            await StoreKnownVectorKey(host);
            var headers = new Dictionary<string, string?>
            {
                ["Authorization"] = $"MC {KnownVector.AccessKey}:{KnownVector.Signature}",
                ["x-mc-date"] = KnownVector.Date,
                ["x-mc-req-id"] = KnownVector.RequestId,
                ["x-mc-app-id"] = KnownVector.AppId,
            };

            var ok = AssertOk(await Send(host, headers, AllUsers));
            Assert.Empty(ok["data"]!.AsArray());
            Assert.Empty(ok["fail"]!.AsArray());
            Assert.Equal(100, ok["meta"]!["pagination"]!["pageSize"]!.GetValue<int>());
            Assert.Null(ok["meta"]!["pagination"]!["next"]);

            AssertRefused(await Send(host, headers, AllUsers), 401, MimecastCodes.RequestIdReused);
        }
        finally
        {
            await host.DisposeAsync();
        }
    }

    [Fact]
    public async Task X_mc_date_is_accepted_within_15_minutes_of_the_service_clock_either_way_and_refused_beyond()
    {
        var now = Instant.FromUtc(2024, 3, 1, 10, 0, 0);
        var (host, _) = await StartClockHost(now);
        try
        {
            var key = await IssueKey(host: host);
            Task<ApiResponse> At(Duration offset, Action<Dictionary<string, string?>>? change = null)
            {
                var headers = TestSigner.Headers(key, (now + offset).ToDateTimeOffset(), NewRequestId());
                change?.Invoke(headers);
                return Send(host, headers, AllUsers);
            }

            AssertOk(await At(Duration.FromMinutes(-15) + Duration.FromSeconds(1)));
            AssertOk(await At(Duration.FromMinutes(15) - Duration.FromSeconds(1)));
            AssertOk(await At(Duration.Zero));
            AssertRefused(await At(Duration.FromMinutes(-15) - Duration.FromSeconds(1)), 401, MimecastCodes.DateOutOfRange);
            AssertRefused(await At(Duration.FromMinutes(15) + Duration.FromSeconds(1)), 401, MimecastCodes.DateOutOfRange);

            // RFC 1123's own spelling (GMT) is accepted too, if the signature covers the header as sent.
            AssertOk(await At(Duration.Zero, h => Resign(h, key, h["x-mc-date"]!.Replace(" UTC", " GMT"))));
            AssertRefused(await At(Duration.Zero, h => Resign(h, key, "2024-03-01T10:00:00Z")), 401, MimecastCodes.InvalidDate);
            AssertRefused(await At(Duration.Zero, h => Resign(h, key, "Sat, 01 Mar 2024 10:00:00 UTC")), 401, MimecastCodes.InvalidDate); // a Friday
        }
        finally
        {
            await host.DisposeAsync();
        }
    }

    /// <summary>Replaces x-mc-date and signs again, so only the date is wrong.</summary>
    private static void Resign(Dictionary<string, string?> headers, MimecastClient key, string date)
    {
        headers["x-mc-date"] = date;
        headers["Authorization"] = $"MC {key.AccessKey}:{TestSigner.Sign(key.SecretKey, $"{date}:{headers["x-mc-req-id"]}:{Route}:{key.AppKey}")}";
    }

    // ---------------------------------------------------------------- refusals

    [Fact]
    public async Task A_wrong_signature_is_401_with_a_Mimecast_fail_entry()
    {
        var key = await IssueKey();
        var otherSecret = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));

        var response = await Call(key with { SecretKey = otherSecret });
        AssertRefused(response, 401, MimecastCodes.InvalidSignature);
        Assert.Equal("MC", response.Headers.WWWAuthenticate.ToString());

        // Signed over another path, or with another app key: the same refusal.
        AssertRefused(await Call(key, change: h => h["Authorization"] =
            $"MC {key.AccessKey}:{TestSigner.Sign(key.SecretKey, $"{h["x-mc-date"]}:{h["x-mc-req-id"]}:/api/other:{key.AppKey}")}"), 401, MimecastCodes.InvalidSignature);
        AssertRefused(await Call(key with { AppKey = Guid.NewGuid().ToString() }), 401, MimecastCodes.InvalidSignature);
        AssertRefused(await Call(key, change: h => h["Authorization"] = $"MC {key.AccessKey}:not-a-signature"), 401, MimecastCodes.InvalidSignature);

        AssertOk(await Call(key));
    }

    [Fact]
    public async Task An_unknown_or_revoked_access_key_is_401()
    {
        var key = await IssueKey();
        var revoked = await IssueKey();
        await using (var session = await Host.Services.GetRequiredService<IDocumentStore>().OpenHome())
        {
            Assert.True(await MimecastKeys.Revoke(session, TenantId, revoked.AccessKey, SystemClock.Instance.GetCurrentInstant()));
            await session.SaveChangesAsync();
        }

        AssertRefused(await Call(key with { AccessKey = "mc" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16)) }), 401, MimecastCodes.UnknownAccessKey);
        AssertRefused(await Call(revoked), 401, MimecastCodes.UnknownAccessKey);
        AssertRefused(await Call(key, change: h => h["Authorization"] = $"MC {key.AccessKey}"), 401, MimecastCodes.AuthorizationMalformed);
        AssertOk(await Call(key));
    }

    [Fact]
    public async Task A_date_more_than_15_minutes_off_the_real_clock_is_401()
    {
        var key = await IssueKey();

        AssertRefused(await Call(key, at: DateTimeOffset.UtcNow.AddMinutes(-16)), 401, MimecastCodes.DateOutOfRange);
        AssertRefused(await Call(key, at: DateTimeOffset.UtcNow.AddMinutes(16)), 401, MimecastCodes.DateOutOfRange);
        AssertRefused(await Call(key, at: DateTimeOffset.UtcNow.AddDays(-1)), 401, MimecastCodes.DateOutOfRange);
        AssertOk(await Call(key, at: DateTimeOffset.UtcNow.AddMinutes(-14)));
    }

    [Fact]
    public async Task A_replayed_request_id_is_401_but_a_refused_request_does_not_spend_its_id()
    {
        var key = await IssueKey();
        var other = await IssueKey();
        var requestId = NewRequestId();

        // Refused first (wrong app id): the id is not spent.
        AssertRefused(await Call(key, requestId: requestId, change: h => h["x-mc-app-id"] = Guid.NewGuid().ToString()), 401, MimecastCodes.AppIdMismatch);
        AssertOk(await Call(key, requestId: requestId));
        // The very same request again (a replay), and the same id signed afresh: both refused.
        AssertRefused(await Call(key, requestId: requestId), 401, MimecastCodes.RequestIdReused);
        AssertRefused(await Call(key, requestId: requestId, at: DateTimeOffset.UtcNow.AddSeconds(5)), 401, MimecastCodes.RequestIdReused);

        // Ids are remembered per access key, and a new id is fine.
        AssertOk(await Call(other, requestId: requestId));
        AssertOk(await Call(key));

        await using var session = await Host.Services.GetRequiredService<IDocumentStore>().QueryHome();
        var seen = await session.LoadAsync<MimecastSeenRequest>($"{key.AccessKey}/{requestId}");
        Assert.NotNull(seen);
        Assert.True(seen.ExpiresAt >= DateTimeOffset.UtcNow.AddMinutes(29), $"A seen id is kept for at least 30 minutes, expires {seen.ExpiresAt:O}");
    }

    [Fact]
    public async Task A_missing_header_is_401_naming_it()
    {
        var key = await IssueKey();
        foreach (var header in new[] { "Authorization", "x-mc-date", "x-mc-req-id", "x-mc-app-id" })
        {
            var json = AssertRefused(await Call(key, change: h => h.Remove(header)), 401, MimecastCodes.MissingHeader);
            Assert.Contains(header, json["fail"]![0]!["errors"]![0].Str("message"), StringComparison.Ordinal);
        }
        AssertRefused(await Call(key, change: h => h["x-mc-req-id"] = "has spaces in it"), 401, MimecastCodes.InvalidRequestId);
    }

    [Fact]
    public async Task Basic_auth_is_not_accepted_on_the_Mimecast_route_and_Mimecast_signing_is_not_accepted_elsewhere()
    {
        var key = await IssueKey();
        var basic = new Dictionary<string, string?> { ["Authorization"] = Basic(TenantId, AllSecret) };

        var refused = await Send(Host, basic, AllUsers);
        AssertRefused(refused, 401, MimecastCodes.AuthorizationMalformed);
        Assert.Contains("Basic", refused.Json["fail"]![0]!["errors"]![0].Str("message"), StringComparison.Ordinal);

        // Valid Basic credentials next to a valid signature: the signature decides, Basic adds nothing.
        AssertOk(await Call(key));

        // The signed headers on a Basic route: not authenticated there.
        var signed = TestSigner.Headers(key, DateTimeOffset.UtcNow, NewRequestId(), "/users/u1/enrolments");
        var elsewhere = await Host.Send(HttpMethod.Get, "/users/u1/enrolments", signed["Authorization"], clientIp: IPAddress.Parse(Scenarios.RandomIp()));
        elsewhere.AssertProblem(401);
    }

    [Fact]
    public async Task Repeated_failed_signatures_from_one_client_get_429_while_other_clients_still_get_in()
    {
        var key = await IssueKey();
        var client = IPAddress.Parse(Scenarios.RandomIp());
        var wrong = key with { SecretKey = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)) };
        for (var i = 0; i < 10; i++)
            AssertRefused(await Call(wrong, client: client), 401, MimecastCodes.InvalidSignature);

        var locked = await Call(key, client: client);
        AssertRefused(locked, 429, MimecastCodes.TooManyFailures);
        Assert.True(int.TryParse(locked.Headers.RetryAfter.ToString(), out var seconds) && seconds is >= 1 and <= 60, $"Retry-After 1–60 s: {locked}");

        AssertOk(await Call(key, client: IPAddress.Parse(Scenarios.RandomIp())));
    }

    // ---------------------------------------------------------------- the envelope

    [Fact]
    public async Task A_waived_enrolment_is_not_watched_and_needs_no_engagement_and_a_real_completion_then_counts_as_watched()
    {
        await PutContent("c1");
        await SetMembers("a1", ["u1"]);
        var assignmentId = await CreateAssignment(new { audienceId = "a1", primaryContentId = "c1", availableDate = Now(TimeSpan.FromDays(-10)), dueDate = Now(TimeSpan.FromDays(-1)) });
        var enrolmentId = await EnrolmentIdFor(assignmentId, "u1");
        await using (var scope = Host.Services.CreateAsyncScope())
            await scope.ServiceProvider.GetRequiredService<Wolverine.IMessageBus>().InvokeForTenantAsync<int>(TenantId,
                new Enrolment.Api.Features.Time.ApplyDueTransitions([Guid.Parse(enrolmentId)]));
        var key = await IssueKey();
        Assert.True(DataFor(AssertOk(await Call(key, Users(new { userId = "u1" }))), "u1")["needEngagement"]!.GetValue<bool>());

        (await Post($"/assignments/{assignmentId}/enrolments/{enrolmentId}/waive", new { reason = "holds the certificate" })).AssertStatus(200);
        var user = DataFor(AssertOk(await Call(key, Users(new { userId = "u1" }))), "u1");
        var item = Assert.Single(user["training"]!.AsArray())!;
        Assert.False(item["watched"]!.GetValue<bool>());
        Assert.Null(item["watchedDate"]);
        Assert.False(user["needEngagement"]!.GetValue<bool>());

        var completedAt = Now(TimeSpan.FromSeconds(-5));
        (await Complete("cmp-w", "u1", "c1", completedAt)).AssertStatus(200);
        item = Assert.Single(DataFor(AssertOk(await Call(key, Users(new { userId = "u1" }))), "u1")["training"]!.AsArray())!;
        Assert.True(item["watched"]!.GetValue<bool>());
        Assert.Equal(completedAt, item.Str("watchedDate"));
    }

    [Fact]
    public async Task A_known_user_gets_one_data_item_with_the_documented_training_fields()
    {
        var assignmentId = await OpenAssignmentFor("u1", "u2");
        var enrolment = await FindEnrolment(assignmentId, "u1");
        var key = await IssueKey();

        var json = AssertOk(await Call(key, Users(new { userId = "u1" })));
        Assert.Empty(json["fail"]!.AsArray());
        Assert.Null(json["meta"]!["pagination"]);
        var user = Assert.Single(json["data"]!.AsArray())!;
        Assert.Equal(["meritBadge", "needEngagement", "training", "userId"], Keys(user));
        Assert.Equal("u1", user.Str("userId"));
        Assert.False(user["needEngagement"]!.GetValue<bool>());
        Assert.Equal(["currentStreak", "earned", "lateCompletions", "onTimeCompletions"], Keys(Badge(user)));
        AssertBadge(user, earned: false, streak: 0, onTime: 0, late: 0);

        var item = Assert.Single(user["training"]!.AsArray())!;
        Assert.Equal(["assignedTimeStamp", "myAnswer", "onWatchlist", "title", "titleId", "watched", "watchedDate"], Keys(item));
        Assert.Equal("Phishing basics", item.Str("title"));
        Assert.Equal("c1", item.Str("titleId"));
        Assert.Matches(Scenarios.InstantFormat, item.Str("assignedTimeStamp"));
        Assert.Equal(enrolment["eventLog"]![0].Str("createdAt"), item.Str("assignedTimeStamp"));
        Assert.False(item["watched"]!.GetValue<bool>());
        Assert.Null(item["watchedDate"]);
        Assert.Null(item["myAnswer"]);
        Assert.False(item["onWatchlist"]!.GetValue<bool>());

        var completedAt = Now(TimeSpan.FromSeconds(-5));
        (await Complete("cmp-1", "u1", "c1", completedAt, answer: 2)).AssertStatus(200);

        user = DataFor(AssertOk(await Call(key, Users(new { userId = "u1" }))), "u1");
        item = Assert.Single(user["training"]!.AsArray())!;
        Assert.True(item["watched"]!.GetValue<bool>());
        Assert.Equal(completedAt, item.Str("watchedDate"));
        Assert.Equal(2, item["myAnswer"]!.GetValue<double>());
        Assert.False(user["needEngagement"]!.GetValue<bool>());
        AssertBadge(user, earned: false, streak: 1, onTime: 1, late: 0);
    }

    [Fact]
    public async Task An_unknown_user_is_a_fail_entry_with_the_request_item_as_key_and_http_200()
    {
        await OpenAssignmentFor("u1");
        var key = await IssueKey();

        var json = AssertOk(await Call(key, Users(new { userId = "nobody" })));

        Assert.Empty(json["data"]!.AsArray());
        var fail = Assert.Single(json["fail"]!.AsArray())!;
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse("{\"userId\":\"nobody\"}"), fail["key"]), fail.ToJsonString());
        var error = Assert.Single(fail["errors"]!.AsArray())!;
        Assert.Equal(MimecastCodes.UserNotFound, error.Str("code"));
        Assert.False(error["retryable"]!.GetValue<bool>());
        Assert.Contains("nobody", error.Str("message"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Mixed_users_answer_data_for_the_known_in_request_order_and_fail_for_the_rest()
    {
        await OpenAssignmentFor("u1", "u2");
        var key = await IssueKey();

        var json = AssertOk(await Call(key, Users(new { userId = "u2" }, new { userId = "nobody" }, new { userId = "u1" }, new { }, new { userId = "not valid!" }, "u3")));

        Assert.Equal(["u2", "u1"], json["data"]!.AsArray().Select(d => d.Str("userId")).ToArray());
        var fails = json["fail"]!.AsArray().Select(f => (Key: f!["key"]!.ToJsonString(), Code: f["errors"]![0].Str("code"))).ToArray();
        Assert.Equal(
            [("{\"userId\":\"nobody\"}", MimecastCodes.UserNotFound), ("{}", MimecastCodes.Blank), ("{\"userId\":\"not valid!\"}", MimecastCodes.InvalidUserId), ("\"u3\"", MimecastCodes.Blank)],
            fails);
    }

    [Fact]
    public async Task Archived_training_is_not_listed_content_without_a_title_is_named_by_its_id_and_another_tenants_key_sees_nothing()
    {
        await OpenAssignmentFor("u1", "u2");
        await CreateAssignment("a1", "c-untitled");
        await RemoveMember("a1", "u2");
        var key = await IssueKey();

        var json = AssertOk(await Call(key, Users(new { userId = "u1" }, new { userId = "u2" })));

        var u1 = DataFor(json, "u1");
        Assert.Equal(["c1", "c-untitled"], u1["training"]!.AsArray().Select(t => t.Str("titleId")).ToArray());
        Assert.Equal(["Phishing basics", "c-untitled"], u1["training"]!.AsArray().Select(t => t.Str("title")).ToArray());
        var u2 = DataFor(json, "u2");
        Assert.Empty(u2["training"]!.AsArray());
        Assert.False(u2["needEngagement"]!.GetValue<bool>());
        Assert.Empty(json["fail"]!.AsArray());

        await CreateTenant("eu-west-1_OtherTenant2");
        var otherKey = await IssueKey("eu-west-1_OtherTenant2");
        var other = AssertOk(await Call(otherKey, Users(new { userId = "u1" })));
        Assert.Empty(other["data"]!.AsArray());
        Assert.Equal(MimecastCodes.UserNotFound, other["fail"]![0]!["errors"]![0].Str("code"));
        Assert.Empty(AssertOk(await Call(otherKey))["data"]!.AsArray());
    }

    [Fact]
    public async Task Data_empty_pages_through_every_user_of_the_tenant_exactly_once()
    {
        var users = Enumerable.Range(1, 7).Select(i => $"user{i:00}").ToArray();
        await OpenAssignmentFor(users);
        await CreateAssignment("a1", "c2"); // two enrolments per user: a page is still counted in users
        var key = await IssueKey();

        var seen = new List<string>();
        string? token = null;
        var pages = 0;
        do
        {
            var body = JsonSerializer.Serialize(new { meta = new { pagination = token is null ? (object)new { pageSize = 3 } : new { pageSize = 3, pageToken = token } }, data = Array.Empty<object>() });
            var json = AssertOk(await Call(key, body));
            var pagination = json["meta"]!["pagination"]!;
            Assert.Equal(3, pagination["pageSize"]!.GetValue<int>());
            Assert.Equal(token, pagination["pageToken"]?.GetValue<string>());
            var data = json["data"]!.AsArray();
            Assert.InRange(data.Count, 1, 3);
            Assert.All(data, d => Assert.Equal(2, d!["training"]!.AsArray().Count));
            seen.AddRange(data.Select(d => d.Str("userId")));
            token = pagination["next"]?.GetValue<string>();
            pages++;
        } while (token is not null && pages < 10);

        Assert.Equal(3, pages);
        Assert.Equal(users, seen.Order(StringComparer.Ordinal).ToArray());
        Assert.Equal(seen.Count, seen.Distinct().Count());

        // No pagination at all: the default page size holds them all.
        var all = AssertOk(await Call(key));
        Assert.Equal(7, all["data"]!.AsArray().Count);
        Assert.Null(all["meta"]!["pagination"]!["next"]);
    }

    [Fact]
    public async Task A_malformed_body_or_pagination_is_400_with_a_fail_entry()
    {
        var key = await IssueKey();

        AssertRefused(await Call(key, "{not json"), 400, MimecastCodes.MalformedRequest);
        AssertRefused(await Call(key, "[]"), 400, MimecastCodes.MalformedRequest);
        AssertRefused(await Call(key, "{\"data\":{\"userId\":\"u1\"}}"), 400, MimecastCodes.MalformedRequest);
        AssertRefused(await Call(key, "{\"meta\":{\"pagination\":{\"pageToken\":\"garbage\"}},\"data\":[]}"), 400, MimecastCodes.InvalidPagination);
        AssertRefused(await Call(key, "{\"meta\":{\"pagination\":{\"pageSize\":0}},\"data\":[]}"), 400, MimecastCodes.InvalidPagination);
        AssertRefused(await Call(key, "{\"meta\":{\"pagination\":{\"pageSize\":501}},\"data\":[]}"), 400, MimecastCodes.InvalidPagination);
        AssertRefused(await Call(key, Users(Enumerable.Range(0, 501).Select(i => (object)new { userId = $"u{i}" }).ToArray())), 400, MimecastCodes.TooManyItems);

        // An empty body is the same as { "data": [] }.
        AssertOk(await Call(key, ""));
    }

    // ---------------------------------------------------------------- reminders, overdue and the merit badge

    [Fact]
    public async Task Three_reminders_in_the_period_put_an_incomplete_training_on_the_watchlist_and_the_user_in_need_of_engagement()
    {
        var assignmentId = await OpenAssignmentFor("u1", "u2");
        var enrolmentId = await EnrolmentIdFor(assignmentId, "u1");
        var key = await IssueKey();

        async Task<(bool OnWatchlist, bool NeedEngagement)> Read()
        {
            var user = DataFor(AssertOk(await Call(key, Users(new { userId = "u1" }))), "u1");
            return (Assert.Single(user["training"]!.AsArray())!["onWatchlist"]!.GetValue<bool>(), user["needEngagement"]!.GetValue<bool>());
        }

        for (var i = 1; i <= 2; i++)
        {
            (await Post($"/assignments/{assignmentId}/enrolments/{enrolmentId}/reminders")).AssertStatus(200);
            Assert.Equal((false, false), await Read());
        }
        (await Post($"/assignments/{assignmentId}/enrolments/{enrolmentId}/reminders")).AssertStatus(200);
        Assert.Equal((true, true), await Read());

        // The other user was not reminded.
        var u2 = DataFor(AssertOk(await Call(key, Users(new { userId = "u2" }))), "u2");
        Assert.False(u2["needEngagement"]!.GetValue<bool>());

        // Completing it takes it off the watchlist.
        (await Complete("cmp-1", "u1", "c1", Now(TimeSpan.FromSeconds(-1)))).AssertStatus(200);
        Assert.Equal((false, false), await Read());
    }

    [Fact]
    public async Task An_overdue_training_needs_engagement_and_completing_it_late_counts_as_a_miss_for_the_merit_badge()
    {
        // Real time: a host that applies time-driven transitions takes the enrolment past its due date.
        var transitions = await AppFixture.StartHost(transitions: true);
        try
        {
            await PutContent("c1");
            await SetMembers("a1", ["u1"]);
            var due = DateTimeOffset.UtcNow.AddSeconds(2);
            var assignmentId = await CreateAssignment(new { audienceId = "a1", primaryContentId = "c1", dueDate = Format(due) });
            var key = await IssueKey();

            var deadline = Stopwatch.StartNew();
            while ((await FindEnrolment(assignmentId, "u1")).Str("status") != "overdue")
            {
                Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(30), "The enrolment did not become overdue within 30 s.");
                await Task.Delay(200);
            }

            var user = DataFor(AssertOk(await Call(key, Users(new { userId = "u1" }))), "u1");
            var item = Assert.Single(user["training"]!.AsArray())!;
            Assert.False(item["watched"]!.GetValue<bool>());
            Assert.False(item["onWatchlist"]!.GetValue<bool>());
            Assert.True(user["needEngagement"]!.GetValue<bool>());

            (await Complete("late-1", "u1", "c1", Now(), answer: 1)).AssertStatus(200);
            user = DataFor(AssertOk(await Call(key, Users(new { userId = "u1" }))), "u1");
            Assert.True(Assert.Single(user["training"]!.AsArray())!["watched"]!.GetValue<bool>());
            Assert.False(user["needEngagement"]!.GetValue<bool>());
            AssertBadge(user, earned: false, streak: 0, onTime: 0, late: 1);
        }
        finally
        {
            await transitions.DisposeAsync();
        }
    }

    private static string Format(DateTimeOffset at) => at.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);

    [Fact]
    public void The_merit_badge_counts_on_time_completions_across_trainings_since_the_last_missed_due_date_and_is_earned_at_three()
    {
        var t0 = Instant.FromUtc(2025, 1, 1, 0, 0);
        Instant Day(int d) => t0 + Duration.FromDays(d);
        var recurring = new Schedule(t0, Period.FromDays(10), null, Period.FromDays(30), Schedule.DefaultTimeZone);
        var a = Guid.NewGuid();
        var b = Guid.NewGuid();
        EnrolmentState? ra = null, rb = null;
        void A(IEnrolmentEvent e) => ra = EnrolmentState.Fold(ra, e);
        void B(IEnrolmentEvent e) => rb = EnrolmentState.Fold(rb, e);
        MeritBadge Badge() => MeritBadge.For([ra!, rb!]);

        A(new EnrolmentAssigned(a, Guid.NewGuid(), "u1", "a1", "c1", recurring, 0, t0, Day(10), t0));
        B(new EnrolmentAssigned(b, Guid.NewGuid(), "u1", "a1", "c2", recurring, 0, t0, Day(10), t0));
        A(new EnrolmentCompleted(a, "x1", "c1", Day(2), 4, Late: false, Day(2)));
        Assert.Equal(new MeritBadge(false, 1, 1, 0), Badge());

        // b misses its due date (day 10): the run before it no longer counts.
        B(new EnrolmentBecameOverdue(b, 0, Day(10), Day(10)));
        Assert.Equal(new MeritBadge(false, 0, 1, 0), Badge());

        // b is completed late, a's next period and b's next period are done on time.
        B(new EnrolmentCompleted(b, "x2", "c2", Day(12), null, Late: true, Day(12)));
        A(new EnrolmentRescheduled(a, 1, Day(30), Day(40), Day(10)));
        A(new EnrolmentOpened(a, 1, Day(30), Day(40), Day(30)));
        B(new EnrolmentOpened(b, 1, Day(30), Day(40), Day(30)));
        A(new EnrolmentCompleted(a, "x3", "c1", Day(31), null, Late: false, Day(31)));
        B(new EnrolmentCompleted(b, "x4", "c2", Day(32), null, Late: false, Day(32)));
        Assert.Equal(new MeritBadge(false, 2, 3, 1), Badge());

        A(new EnrolmentOpened(a, 2, Day(60), Day(70), Day(60)));
        A(new EnrolmentCompleted(a, "x5", "c1", Day(61), null, Late: false, Day(61)));
        Assert.Equal(new MeritBadge(true, 3, 4, 1), Badge());

        // The next miss, on either training, loses the badge.
        B(new EnrolmentOpened(b, 2, Day(60), Day(70), Day(60)));
        B(new EnrolmentBecameOverdue(b, 2, Day(70), Day(70)));
        Assert.Equal(new MeritBadge(false, 0, 4, 1), Badge());
    }

    // ---------------------------------------------------------------- keys: CLI and storage

    [Fact]
    public async Task The_secret_key_is_stored_encrypted_and_only_the_configured_key_decrypts_it()
    {
        var key = await IssueKey();
        var secret = Convert.FromBase64String(key.SecretKey);
        Assert.True(secret.Length >= 32, "The secret key has at least 256 random bits.");

        await using var session = await Host.Services.GetRequiredService<IDocumentStore>().QueryHome();
        var raw = await session.Json.FindByIdAsync<MimecastKey>(key.AccessKey);
        Assert.NotNull(raw);
        Assert.DoesNotContain(key.SecretKey, raw);
        Assert.DoesNotContain(Convert.ToHexString(secret), raw, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(Convert.ToBase64String(secret).TrimEnd('=').Replace('+', '-').Replace('/', '_'), raw);

        var stored = (await session.LoadAsync<MimecastKey>(key.AccessKey))!;
        Assert.Equal(TenantId, stored.TenantId);
        Assert.Equal(secret, Host.Services.GetRequiredService<MimecastSecretCipher>().Decrypt(stored.Id, stored.EncryptedSecretKey));
        var otherKek = new MimecastSecretCipher(Options.Create(new MimecastSettings { KeyEncryptionKey = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)) }));
        Assert.Null(otherKek.Decrypt(stored.Id, stored.EncryptedSecretKey));
        // The ciphertext is bound to its access key: moved to another row, it does not decrypt.
        Assert.Null(Host.Services.GetRequiredService<MimecastSecretCipher>().Decrypt("mcother", stored.EncryptedSecretKey));
    }

    [Fact]
    public async Task Tenants_mimecast_key_prints_a_working_key_set_as_json_on_the_last_line_lists_it_and_revokes_it()
    {
        var issued = await Cli("tenants", "mimecast-key", TenantId);
        Assert.True(issued.ExitCode == 0, $"`tenants mimecast-key` failed: {issued}");
        var last = issued.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Trim()).Last(l => l.Length > 0);
        var keySet = JsonNode.Parse(last)!.AsObject();
        Assert.Equal(["accessKey", "appId", "appKey", "secretKey"], Keys(keySet));
        var key = new MimecastClient(keySet.Str("accessKey"), keySet.Str("secretKey"), keySet.Str("appId"), keySet.Str("appKey"));
        Assert.True(Convert.FromBase64String(key.SecretKey).Length >= 32);
        Assert.DoesNotContain(key.SecretKey, issued.StdErr);

        await OpenAssignmentFor("u1");
        DataFor(AssertOk(await Call(key, Users(new { userId = "u1" }))), "u1");

        var list = await Cli("tenants", "list");
        Assert.True(list.ExitCode == 0, $"`tenants list` failed: {list}");
        Assert.Contains(list.StdOut.Split('\n'), l => l.Contains("mimecast-key", StringComparison.Ordinal) && l.Contains(key.AccessKey, StringComparison.Ordinal) && l.Contains("active", StringComparison.Ordinal));
        Assert.DoesNotContain(key.SecretKey, list.StdOut + list.StdErr);

        var revoke = await Cli("tenants", "revoke-mimecast-key", TenantId, key.AccessKey);
        Assert.True(revoke.ExitCode == 0, $"`tenants revoke-mimecast-key` failed: {revoke}");
        AssertRefused(await Call(key), 401, MimecastCodes.UnknownAccessKey);

        var unknownTenant = await Cli("tenants", "mimecast-key", "eu-west-3_NoSuchTenant");
        Assert.True(unknownTenant.ExitCode != 0, $"A key for an unknown tenant must fail: {unknownTenant}");
        Assert.DoesNotContain("secretKey", unknownTenant.StdOut);
    }

    // ---------------------------------------------------------------- key-encryption key rotation

    [Fact]
    public async Task Mimecast_rotate_key_re_encrypts_every_stored_secret_under_the_new_key_and_signed_requests_keep_working()
    {
        var key = await IssueKey();   // sealed under the fixture's (development) key-encryption key
        var revoked = await IssueKey();
        await using (var session = await Host.Services.GetRequiredService<IDocumentStore>().OpenHome())
        {
            await MimecastKeys.Revoke(session, TenantId, revoked.AccessKey, SystemClock.Instance.GetCurrentInstant());
            await session.SaveChangesAsync();
        }
        var newKek = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
        var rotation = new Dictionary<string, string>
        {
            ["Mimecast__KeyEncryptionKey"] = newKek,
            ["Mimecast__PreviousKeyEncryptionKey"] = MimecastSettings.DevelopmentKeyEncryptionKey,
        };

        var rotated = await CliWith(rotation, "mimecast", "rotate-key");
        Assert.True(rotated.ExitCode == 0, $"`mimecast rotate-key` failed: {rotated}");
        Assert.Contains("Re-encrypted 2 Mimecast secret keys", rotated.StdOut);
        Assert.DoesNotContain(key.SecretKey, rotated.StdOut + rotated.StdErr);

        // Only the new key opens the rows now, revoked ones included; the secret inside is the one the client holds.
        var onlyNew = new MimecastSecretCipher(Options.Create(new MimecastSettings { KeyEncryptionKey = newKek }));
        var onlyOld = Host.Services.GetRequiredService<MimecastSecretCipher>();
        await using (var session = await Host.Services.GetRequiredService<IDocumentStore>().QueryHome())
        {
            foreach (var client in new[] { key, revoked })
            {
                var stored = (await session.LoadAsync<MimecastKey>(client.AccessKey))!;
                Assert.Equal(Convert.FromBase64String(client.SecretKey), onlyNew.Decrypt(stored.Id, stored.EncryptedSecretKey));
                Assert.Null(onlyOld.Decrypt(stored.Id, stored.EncryptedSecretKey));
            }
        }

        // A node configured with the new key alone serves the rotated key set.
        var host = await AppFixture.StartHost(transitions: false, b => b.UseSetting("Mimecast:KeyEncryptionKey", newKek));
        try
        {
            await OpenAssignmentFor("u1");
            DataFor(AssertOk(await Send(host, TestSigner.Headers(key, DateTimeOffset.UtcNow, NewRequestId()), Users(new { userId = "u1" }))), "u1");
        }
        finally
        {
            await host.DisposeAsync();
        }

        // Running it again changes nothing: everything is already under the new key.
        var again = await CliWith(rotation, "mimecast", "rotate-key");
        Assert.True(again.ExitCode == 0, $"A second `mimecast rotate-key` failed: {again}");
        Assert.Contains("Re-encrypted 0 Mimecast secret keys", again.StdOut);
    }

    [Fact]
    public async Task Mimecast_rotate_key_without_a_previous_key_or_with_a_row_neither_key_opens_says_so_and_fails()
    {
        var noPrevious = await CliWith(new Dictionary<string, string> { ["Mimecast__KeyEncryptionKey"] = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)) },
            "mimecast", "rotate-key");
        Assert.True(noPrevious.ExitCode != 0, $"rotate-key without Mimecast:PreviousKeyEncryptionKey must fail: {noPrevious}");
        Assert.Contains("Mimecast__PreviousKeyEncryptionKey", noPrevious.StdErr);

        // A row sealed with some third key is reported by access key and left as it was.
        var lost = await IssueKey();
        var rotation = new Dictionary<string, string>
        {
            ["Mimecast__KeyEncryptionKey"] = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)),
            ["Mimecast__PreviousKeyEncryptionKey"] = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)),
        };
        byte[] before;
        await using (var session = await Host.Services.GetRequiredService<IDocumentStore>().QueryHome())
            before = (await session.LoadAsync<MimecastKey>(lost.AccessKey))!.EncryptedSecretKey;
        var result = await CliWith(rotation, "mimecast", "rotate-key");
        Assert.True(result.ExitCode != 0, $"Unreadable rows must fail the rotation: {result}");
        Assert.Contains(lost.AccessKey, result.StdErr);
        await using (var session = await Host.Services.GetRequiredService<IDocumentStore>().QueryHome())
            Assert.Equal(before, (await session.LoadAsync<MimecastKey>(lost.AccessKey))!.EncryptedSecretKey);
    }

    [Fact]
    public async Task Mimecast_generate_key_prints_a_fresh_32_byte_key_alone_on_the_last_line()
    {
        static string Last(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Trim()).Last(l => l.Length > 0);
        var first = await Cli("mimecast", "generate-key");
        var second = await Cli("mimecast", "generate-key");
        Assert.True(first.ExitCode == 0, first.ToString());
        Assert.True(MimecastSecretCipher.TryDecodeKey(Last(first.StdOut), out _), first.ToString());
        Assert.NotEqual(Last(first.StdOut), Last(second.StdOut));
    }

    [Fact]
    public void Outside_development_the_cipher_refuses_the_published_key_so_the_cli_cannot_issue_keys_under_it()
    {
        var production = new Microsoft.Extensions.Hosting.Internal.HostingEnvironment { EnvironmentName = "Production" };
        var published = Options.Create(new MimecastSettings { KeyEncryptionKey = MimecastSettings.DevelopmentKeyEncryptionKey });
        var refused = Assert.Throws<InvalidOperationException>(() => new MimecastSecretCipher(published, production));
        Assert.Contains("openssl rand -base64 32", refused.Message);
        var own = Options.Create(new MimecastSettings { KeyEncryptionKey = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)) });
        // A key of the operator's own is accepted, and seals and opens secrets.
        var cipher = new MimecastSecretCipher(own, production);
        var secret = RandomNumberGenerator.GetBytes(32);
        Assert.Equal(secret, cipher.Decrypt("mc-key-1", cipher.Encrypt("mc-key-1", secret)));
    }

    private sealed record CliResult(int ExitCode, string StdOut, string StdErr)
    {
        public override string ToString() => $"exit {ExitCode}\n--- stdout\n{StdOut}\n--- stderr\n{(StdErr.Length > 4000 ? StdErr[^4000..] : StdErr)}";
    }

    private static Task<CliResult> Cli(params string[] args) => CliWith(new Dictionary<string, string>(), args);

    /// <summary>Runs the built service as a command, as an operator does (see CliTests for why its own output directory).</summary>
    private static async Task<CliResult> CliWith(IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        var testOutput = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var dll = Path.Combine(AppContext.BaseDirectory, "Enrolment.Api.dll");
        for (var dir = testOutput; dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "src", "Enrolment.Api", "bin", testOutput.Parent?.Name ?? "Release", testOutput.Name, "Enrolment.Api.dll");
            if (File.Exists(candidate)) { dll = candidate; break; }
        }
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
            WorkingDirectory = Path.GetDirectoryName(dll)!,
        };
        start.ArgumentList.Add(dll);
        foreach (var a in args) start.ArgumentList.Add(a);
        start.Environment["ConnectionStrings__Enrolment"] = AppFixture.ConnectionString;
        start.Environment["DOTNET_ENVIRONMENT"] = "Development";
        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Development";
        foreach (var (name, value) in environment) start.Environment[name] = value;

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        // A few seconds on a quiet machine; a loaded 2-core machine has needed over a minute (like CliTests).
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(180));
        try { await process.WaitForExitAsync(timeout.Token); }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new Xunit.Sdk.XunitException($"`{string.Join(' ', args)}` did not end within 180 s.");
        }
        return new CliResult(process.ExitCode, await stdout, await stderr);
    }
}
