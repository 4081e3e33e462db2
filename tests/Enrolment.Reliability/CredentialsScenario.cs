using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Npgsql;
using static Enrolment.Reliability.SecurityProbes;

namespace Enrolment.Reliability;

/// <summary>
/// Secrets never appear in clear in the service's logs, in any response, or anywhere in its database; brute force from
/// one client meets 429 with Retry-After after the configured failures while another client is still served; and a wrong
/// secret takes as long to refuse whether it shares nothing or all but its last character with the real one.
/// <para>
/// The service counts failed authentications per client address (Infrastructure/Auth/ClientFailures.cs, keyed by the
/// connection's remote address; no forwarded header is honoured). So the timing probes, hundreds of wrong secrets,
/// come from many client addresses (<see cref="ScenarioContext.NewClientFrom"/>, or sockets bound to 127.13.x.y), each
/// staying under the limit: no configuration is changed for this scenario.
/// </para>
/// </summary>
public sealed class CredentialsScenario : IScenario
{
    /// <summary>Client addresses 127.13.x.y: .1.1 the valid traffic, .1.2 and .1.3 the brute force, the rest the wrong secrets.</summary>
    private const int AddressRange = 13;

    /// <summary>Auth:MaxFailuresPerClientPerMinute and Mimecast:MaxFailuresPerClientPerMinute as documented and as the runners configure them.</summary>
    public const int MaxFailuresPerMinute = 10;

    private const int FailuresPerAddress = 8;

    public string Name => "credentials";
    public string Promise => "Secrets and access tokens are never stored or logged in clear; brute force meets 429, at the token endpoint too; a wrong secret's refusal takes as long however much of it matched";

    /// <summary>One secret and the forms it could leak in (the secret, the Basic header value carrying it, other encodings).</summary>
    private sealed record Secret(string Name, IReadOnlyList<string> Forms, byte[]? Bytes = null);

    public async Task<ScenarioResult> Run(ScenarioContext context, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var findings = new List<string>();
        var figures = new List<Figure>();
        var passed = true;
        var random = new Random(context.Seed);
        var tenant = context.Tenants[0];
        var replies = new List<Reply>();
        var clients = new Dictionary<int, HttpClient>();
        HttpClient Client(int n) => clients.TryGetValue(n, out var c) ? c : clients[n] = context.ClientFrom(Address(AddressRange, n));
        var nextAddress = 10;
        async Task<Reply> Send(int address, HttpRequestMessage request)
        {
            var reply = await Client(address).Exchange(request, ct);
            lock (replies) replies.Add(reply);
            return reply;
        }

        try
        {
            var key = context.IssueMimecastKey is { } issue ? await issue(tenant.TenantId, ct) : null;
            var secrets = Secrets(context.Tenants, key);

            // ------------------------------------------------------------------ traffic that carries the secrets
            context.Log("credentials: requests carrying every secret, accepted and refused");
            const string read = "/users/cred-u1/enrolments";
            foreach (var t in context.Tenants)
            {
                foreach (var secret in new[] { t.AllSecret, t.ReadSecret, t.WriteSecret })
                {
                    await Send(0, Request(HttpMethod.Get, read, t.Basic(secret)));
                    await Send(0, Request(HttpMethod.Put, "/content/cred-c1", t.Basic(secret), "{\"title\":\"credentials\"}"));
                }
                // Refused on purpose, each from an address of its own: a failure must not log or echo what was presented.
                foreach (var header in new[]
                {
                    t.Basic(t.AllSecret + "x"), t.Basic("x" + t.AllSecret), t.Basic(t.AllSecret.ToUpperInvariant()),
                    new AuthenticationHeaderValue("Basic", B64($"{(t == tenant ? context.Tenants[1] : tenant).TenantId}:{t.AllSecret}")),
                    new AuthenticationHeaderValue("Basic", B64($"{t.AllSecret}:{t.AllSecret}")), new AuthenticationHeaderValue("Bearer", t.AllSecret),
                    new AuthenticationHeaderValue("Basic", B64($"{t.TenantId}:{t.AllSecret}") + "!"),
                })
                    await Send(nextAddress++, Request(HttpMethod.Get, read, header));
            }
            // The token endpoint (POST /oauth2/token): every secret exchanged by Basic and by form fields, each token used
            // once; wrong client secrets refused, each from an address of its own. The tokens join the secrets scanned for
            // in logs and the database (they are meant to be in the token endpoint's answers, nowhere else).
            var tokens = new List<string>();
            foreach (var t in context.Tenants)
                foreach (var secret in new[] { t.AllSecret, t.ReadSecret, t.WriteSecret })
                {
                    foreach (var viaForm in new[] { false, true })
                    {
                        var reply = await Send(0, TokenRequest(t.TenantId, secret, viaForm));
                        if (reply.Status == 200 && JsonNode.Parse(reply.Body)?["access_token"]?.GetValue<string>() is { } token)
                        {
                            tokens.Add(token);
                            await Send(0, Request(HttpMethod.Get, read, new AuthenticationHeaderValue("Bearer", token)));
                        }
                    }
                    await Send(nextAddress++, TokenRequest(t.TenantId, secret + "x", viaForm: true));
                    await Send(nextAddress++, TokenRequest(t.TenantId, secret + "x", viaForm: false));
                }
            var tokensIssued = tokens.Count;
            figures.Add(new("access tokens issued (Basic and form, every secret) / expected", $"{Count(tokensIssued)} / {Count(6 * context.Tenants.Count)}", "all", tokensIssued == 6 * context.Tenants.Count));
            passed &= tokensIssued == 6 * context.Tenants.Count;

            if (key is not null)
            {
                await Send(0, MimecastRequest(key, "{\"data\":[{\"userId\":\"cred-u1\"}]}"));
                await Send(nextAddress++, MimecastRequest(key with { AppKey = key.SecretKey }, "{\"data\":[]}"));
                await Send(nextAddress++, MimecastRequest(key with { AccessKey = key.SecretKey.Replace("/", "_").Replace("+", "-").TrimEnd('=') }, "{\"data\":[]}"));
            }

            // ------------------------------------------------------------------ brute force
            context.Log("credentials: brute force from one client");
            var wrong = tenant.Basic(NewSecretLike(tenant.AllSecret, random, shared: 3));
            var attempts = new List<Reply>();
            for (var i = 0; i < MaxFailuresPerMinute + 5; i++)
            {
                var reply = await Send(1, Request(HttpMethod.Get, read, wrong));
                attempts.Add(reply);
                if (reply.Status == 429) break;
            }
            var refusedBefore429 = attempts.TakeWhile(r => r.Status == 401).Count();
            var blocked = attempts.LastOrDefault(r => r.Status == 429);
            var retryAfter = blocked?.Header("Retry-After");
            var blockedWithRightSecret = await Send(1, Request(HttpMethod.Get, read, tenant.All));
            var otherClient = await Send(nextAddress++, Request(HttpMethod.Get, read, tenant.All));
            var retryAfterOk = int.TryParse(retryAfter, CultureInfo.InvariantCulture, out var seconds) && seconds is >= 1 and <= 60;
            var bruteForceOk = refusedBefore429 == MaxFailuresPerMinute && blocked is not null && WhyNotAProblem(blocked) is null && retryAfterOk && otherClient.Status == 200;
            figures.Add(new("Basic: 401s from one client before its first 429", Count(refusedBefore429), Count(MaxFailuresPerMinute), refusedBefore429 == MaxFailuresPerMinute));
            figures.Add(new("Basic: the 429", blocked is null ? "none" : $"Retry-After: {retryAfter ?? "missing"}, {(WhyNotAProblem(blocked) is null ? "a problem document" : "not a problem document")}", "Retry-After 1–60 s, problem document", retryAfterOk && blocked is not null && WhyNotAProblem(blocked) is null));
            figures.Add(new("Basic: the right secret from the blocked client / from another client", $"{blockedWithRightSecret.Status} / {otherClient.Status}", "429 / 200", blockedWithRightSecret.Status == 429 && otherClient.Status == 200));
            passed &= bruteForceOk && blockedWithRightSecret.Status == 429;
            if (!bruteForceOk) findings.Add($"Basic brute force: {ByStatus(attempts.Select(r => r.Status))}; last answer {attempts[^1]}; another client with the right secret: {otherClient}.");

            // The token endpoint, client secrets in the form: the same count per client, then 429 with Retry-After.
            var tokenAttempts = new List<Reply>();
            var wrongForm = NewSecretLike(tenant.AllSecret, random, shared: 3);
            for (var i = 0; i < MaxFailuresPerMinute + 5; i++)
            {
                var reply = await Send(3, TokenRequest(tenant.TenantId, wrongForm, viaForm: true));
                tokenAttempts.Add(reply);
                if (reply.Status == 429) break;
            }
            var tokenRefused = tokenAttempts.TakeWhile(r => r.Status == 401 && r.Body.Contains("invalid_client", StringComparison.Ordinal)).Count();
            var tokenBlocked = tokenAttempts.LastOrDefault(r => r.Status == 429);
            var tokenBlockedRight = await Send(3, TokenRequest(tenant.TenantId, tenant.AllSecret, viaForm: true));
            var tokenOther = await Send(nextAddress++, TokenRequest(tenant.TenantId, tenant.AllSecret, viaForm: true));
            var tokenOk = tokenRefused == MaxFailuresPerMinute && tokenBlocked?.Header("Retry-After") is { Length: > 0 } && tokenBlockedRight.Status == 429 && tokenOther.Status == 200;
            figures.Add(new("token endpoint: invalid_client from one client before its first 429 / Retry-After / right secret from it / from another client",
                $"{tokenRefused} / {tokenBlocked?.Header("Retry-After") ?? "none"} / {tokenBlockedRight.Status} / {tokenOther.Status}", $"{MaxFailuresPerMinute} / present / 429 / 200", tokenOk));
            passed &= tokenOk;
            if (!tokenOk) findings.Add($"Token endpoint brute force: {ByStatus(tokenAttempts.Select(r => r.Status))}; last {tokenAttempts[^1]}; another client: {tokenOther}.");

            if (key is not null)
            {
                var forged = key with { SecretKey = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)) };
                var mcAttempts = new List<Reply>();
                for (var i = 0; i < MaxFailuresPerMinute + 5; i++)
                {
                    var reply = await Send(2, MimecastRequest(forged, "{\"data\":[]}"));
                    mcAttempts.Add(reply);
                    if (reply.Status == 429) break;
                }
                var mcRefused = mcAttempts.TakeWhile(r => r.Status == 401).Count();
                var mcBlocked = mcAttempts.LastOrDefault(r => r.Status == 429);
                var mcOther = await Send(nextAddress++, MimecastRequest(key, "{\"data\":[]}"));
                var mcOk = mcRefused == MaxFailuresPerMinute && mcBlocked?.Header("Retry-After") is { Length: > 0 } && mcOther.Status == 200;
                figures.Add(new("Mimecast: 401s from one client before its first 429 / Retry-After / another client signed right",
                    $"{mcRefused} / {mcBlocked?.Header("Retry-After") ?? "none"} / {mcOther.Status}", $"{MaxFailuresPerMinute} / present / 200", mcOk));
                passed &= mcOk;
                if (!mcOk) findings.Add($"Mimecast brute force: {ByStatus(mcAttempts.Select(r => r.Status))}; last {mcAttempts[^1]}; another client: {mcOther}.");
            }

            // ------------------------------------------------------------------ timing
            var samples = Math.Max(100, (int)Math.Round(600 * context.Scale));
            context.Log($"credentials: timing {Count(samples)} wrong secrets of each kind, interleaved, from {Count(2 * samples / FailuresPerAddress)} client addresses");
            var far = new List<double>();
            var near = new List<double>();
            var timingNot401 = 0;
            var farSecret = NewSecretLike(tenant.AllSecret, random, shared: 0);
            var nearSecret = NewSecretLike(tenant.AllSecret, random, shared: tenant.AllSecret.Length - 1);
            const int warmUp = 2; // addresses whose answers are not counted: JIT, connection pools, the database's caches
            for (var block = 0; block < warmUp + 2 * samples / FailuresPerAddress; block++)
            {
                var address = nextAddress++;
                _ = await Client(address).Exchange(Request(HttpMethod.Get, "/health/live", null), ct); // opens the connection
                // Each address sends as many of each kind, in a random order: both kinds see the same clients and connections.
                foreach (var isNear in Enumerable.Range(0, FailuresPerAddress).Select(i => i % 2 == 0).OrderBy(_ => random.Next()).ToArray())
                {
                    var reply = await Send(address, Request(HttpMethod.Get, read, tenant.Basic(isNear ? nearSecret : farSecret)));
                    if (reply.Status != 401) timingNot401++;
                    if (block >= warmUp) (isNear ? near : far).Add(reply.Latency.TotalMilliseconds);
                }
            }
            var (medianFar, medianNear) = (Median(far), Median(near));
            var ratio = medianNear / medianFar;
            var inProcess = context.Service is null;
            figures.Add(new("wrong secrets timed (sharing 0 / all but one leading characters)", $"{Count(far.Count)} / {Count(near.Count)}"));
            figures.Add(new("client addresses they came from (the service counts failures per address; no setting changed)",
                $"{Count(warmUp + 2 * samples / FailuresPerAddress)}, {FailuresPerAddress} failures each, {(context.NewClientFrom is null ? "loopback sockets bound to 127.13.x.y" : "set by the runner")}"));
            figures.Add(new("median ms, sharing 0 / all but one", $"{medianFar:0.000} / {medianNear:0.000}"));
            figures.Add(new("ratio of medians (all but one ÷ none)", ratio.ToString("0.000", CultureInfo.InvariantCulture), inProcess ? "" : "0.8–1.25", inProcess ? null : ratio is >= 0.8 and <= 1.25));
            figures.Add(new("timing probes not answered 401", Count(timingNot401), "0", timingNot401 == 0));
            passed &= timingNot401 == 0 && (inProcess || ratio is >= 0.8 and <= 1.25);
            // The same at the token endpoint, client secrets in the form (half as many samples).
            var tokenFar = new List<double>();
            var tokenNear = new List<double>();
            var tokenNot401 = 0;
            for (var block = 0; block < warmUp + samples / FailuresPerAddress; block++)
            {
                var address = nextAddress++;
                _ = await Client(address).Exchange(Request(HttpMethod.Get, "/health/live", null), ct);
                foreach (var isNear in Enumerable.Range(0, FailuresPerAddress).Select(i => i % 2 == 0).OrderBy(_ => random.Next()).ToArray())
                {
                    var reply = await Send(address, TokenRequest(tenant.TenantId, isNear ? nearSecret : farSecret, viaForm: true));
                    if (reply.Status != 401) tokenNot401++;
                    if (block >= warmUp) (isNear ? tokenNear : tokenFar).Add(reply.Latency.TotalMilliseconds);
                }
            }
            var tokenRatio = Median(tokenNear) / Median(tokenFar);
            figures.Add(new("token endpoint: median ms, sharing 0 / all but one", $"{Median(tokenFar):0.000} / {Median(tokenNear):0.000}"));
            figures.Add(new("token endpoint: ratio of medians (all but one ÷ none)", tokenRatio.ToString("0.000", CultureInfo.InvariantCulture), inProcess ? "" : "0.8–1.25", inProcess ? null : tokenRatio is >= 0.8 and <= 1.25));
            figures.Add(new("token endpoint: timing probes not answered 401", Count(tokenNot401), "0", tokenNot401 == 0));
            passed &= tokenNot401 == 0 && (inProcess || tokenRatio is >= 0.8 and <= 1.25);
            if (inProcess) findings.Add("Timing is reported, not held to a goal, in-process (./build/test.sh makes no timed assertions).");
            findings.Add("Constant time: a Basic secret is hashed (SHA-256) and the hash compared with every stored hash of the tenant by " +
                         "CryptographicOperations.FixedTimeEquals, with no early exit (src/Enrolment.Api/Infrastructure/Auth/TenantAccount.cs, Secrets.Match); " +
                         "comparing hashes also hides the secret's length. A Mimecast signature is compared with FixedTimeEquals " +
                         "(src/Enrolment.Api/Features/Mimecast/MimecastAuthentication.cs, SignatureMatches).");

            // ------------------------------------------------------------------ scans
            context.Log("credentials: scanning responses, logs and the database for every secret");
            await Task.Delay(1000, ct); // the service's last log lines
            var inResponses = replies.SelectMany(r => secrets.Where(s => s.Forms.Any(f => r.Body.Contains(f, StringComparison.Ordinal) || r.Headers.Any(h => h.Value.Contains(f, StringComparison.Ordinal))))
                .Select(s => $"{s.Name} in a {r.Status} answer")).Distinct().ToList();
            var inLogs = new List<string>();
            var logLines = 0;
            var failuresLogged = 0;
            foreach (var file in context.ServiceLogFiles)
            {
                var text = await ReadShared(file, ct);
                logLines += text.Count(c => c == '\n');
                // The scan's own check: the failed authentications above are logged (without what was presented).
                failuresLogged += CountOf(text, "Authentication failed for a request from");
                inLogs.AddRange(secrets.Where(s => s.Forms.Any(f => text.Contains(f, StringComparison.Ordinal))).Select(s => $"{s.Name} in {Path.GetFileName(file)}"));
            }
            // The scan's own check: the tenant id (no secret) is found where it is stored, so the scan can see what it looks for.
            var canary = new Secret($"the tenant id {tenant.TenantId}", [tenant.TenantId]);
            var tokenSecrets = tokens.Select((t, i) => new Secret($"access token {i + 1}", [t, t.Split('.')[2]])).ToList();
            foreach (var file in context.ServiceLogFiles)
            {
                var text = await ReadShared(file, ct);
                inLogs.AddRange(tokenSecrets.Where(s => s.Forms.Any(f => text.Contains(f, StringComparison.Ordinal))).Select(s => $"{s.Name} in {Path.GetFileName(file)}"));
            }
            var (hits, columns) = await ScanDatabase(context.ConnectionString, [.. secrets, .. tokenSecrets, canary], ct);
            var inDatabase = hits.Where(h => !h.StartsWith(canary.Name, StringComparison.Ordinal)).ToList();
            var canaryColumns = hits.Count - inDatabase.Count;

            figures.Add(new("secrets looked for (each in several forms) / access tokens looked for in logs and the database", $"{Count(secrets.Count)} / {Count(tokenSecrets.Count)}"));
            figures.Add(new("responses scanned (bodies and headers)", Count(replies.Count)));
            figures.Add(new("secrets found in responses", Count(inResponses.Count), "0", inResponses.Count == 0));
            figures.Add(new("log files scanned / lines / failed authentications logged (the scan's check)",
                context.ServiceLogFiles.Count == 0 ? "none in this run" : $"{Count(context.ServiceLogFiles.Count)} / {Count(logLines)} / {Count(failuresLogged)}", context.ServiceLogFiles.Count == 0 ? "" : "… / … / ≥ 1", context.ServiceLogFiles.Count == 0 ? null : failuresLogged > 0));
            figures.Add(new("secrets found in logs", Count(inLogs.Count), "0", inLogs.Count == 0));
            figures.Add(new("database columns scanned (text, json, bytea, … of every table)", Count(columns)));
            figures.Add(new("secrets found in the database", Count(inDatabase.Count), "0", inDatabase.Count == 0));
            figures.Add(new("columns holding the tenant id (the scan's check)", Count(canaryColumns), "≥ 1", canaryColumns > 0));
            if (context.ServiceLogFiles.Count == 0) findings.Add("No service log files in this run: logs were not scanned.");
            foreach (var hit in inResponses.Concat(inLogs).Concat(inDatabase)) findings.Add("Secret in clear: " + hit);
            passed &= inResponses.Count == 0 && inLogs.Count == 0 && inDatabase.Count == 0 && canaryColumns > 0 && (context.ServiceLogFiles.Count == 0 || failuresLogged > 0);

            return new ScenarioResult(Name, Promise, passed, figures, findings, clock.Elapsed);
        }
        finally
        {
            foreach (var c in clients.Values) c.Dispose();
        }
    }

    private static string B64(string text) => Convert.ToBase64String(Encoding.UTF8.GetBytes(text));

    /// <summary>POST /oauth2/token with the client credentials by HTTP Basic or in the form (RFC 6749 §2.3.1).</summary>
    private static HttpRequestMessage TokenRequest(string tenantId, string secret, bool viaForm)
    {
        var fields = new List<KeyValuePair<string, string>> { new("grant_type", "client_credentials") };
        if (viaForm) { fields.Add(new("client_id", tenantId)); fields.Add(new("client_secret", secret)); }
        var request = new HttpRequestMessage(HttpMethod.Post, "/oauth2/token") { Content = new FormUrlEncodedContent(fields) };
        if (!viaForm) request.Headers.Authorization = new AuthenticationHeaderValue("Basic", B64($"{tenantId}:{secret}"));
        return request;
    }

    private static int CountOf(string text, string value)
    {
        var count = 0;
        for (var i = text.IndexOf(value, StringComparison.Ordinal); i >= 0; i = text.IndexOf(value, i + value.Length, StringComparison.Ordinal)) count++;
        return count;
    }

    /// <summary>
    /// Every secret issued in the run, in the forms it could leak in: as issued, inside the Basic header that carries it,
    /// and for the Mimecast secret key (32 bytes, Base64) also as base64url, hex and raw bytes.
    /// </summary>
    private static List<Secret> Secrets(IReadOnlyList<TenantCredentials> tenants, MimecastKeySet? key)
    {
        var secrets = new List<Secret>();
        foreach (var t in tenants)
            foreach (var (scope, secret) in new[] { ("all", t.AllSecret), ("read", t.ReadSecret), ("write", t.WriteSecret) })
                secrets.Add(new Secret($"the {scope} secret of {t.TenantId}", [secret, B64($"{t.TenantId}:{secret}")]));
        if (key is not null)
        {
            var bytes = Convert.FromBase64String(key.SecretKey);
            secrets.Add(new Secret($"the Mimecast secret key of {key.AccessKey}",
                [key.SecretKey, key.SecretKey.Replace('+', '-').Replace('/', '_').TrimEnd('='), Convert.ToHexStringLower(bytes), Convert.ToHexString(bytes)], bytes));
        }
        return secrets;
    }

    /// <summary>A wrong secret of the same length and alphabet that shares exactly <paramref name="shared"/> leading characters with the real one.</summary>
    private static string NewSecretLike(string real, Random random, int shared)
    {
        const string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        var chars = real.ToCharArray();
        for (var i = shared; i < chars.Length; i++)
        {
            var c = alphabet[random.Next(alphabet.Length)];
            chars[i] = i == shared && c == real[i] ? alphabet[(alphabet.IndexOf(c) + 1) % alphabet.Length] : c;
        }
        return new string(chars);
    }

    private static async Task<string> ReadShared(string file, CancellationToken ct)
    {
        await using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var reader = new StreamReader(stream);
        return await reader.ReadToEndAsync(ct);
    }

    /// <summary>Every column that can hold text or bytes, of every table in every schema of the service's database, searched for every form of every secret.</summary>
    private static async Task<(List<string> Hits, int Columns)> ScanDatabase(string connectionString, IReadOnlyList<Secret> secrets, CancellationToken ct)
    {
        string[] textual = ["text", "character varying", "character", "json", "jsonb", "ARRAY", "USER-DEFINED", "name", "xml"];
        var hits = new List<string>();
        var columns = 0;
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(ct);
        foreach (var (schema, table, tableColumns) in await Tables(connectionString, ct))
            foreach (var (column, type) in tableColumns.Where(c => c.Type == "bytea" || textual.Contains(c.Type)))
            {
                columns++;
                var name = $"{Quote(schema)}.{Quote(table)}";
                // One pass over the column: a count per secret, each matching any of the secret's forms.
                await using var command = new NpgsqlCommand { Connection = connection };
                var counts = new List<string>();
                foreach (var secret in secrets)
                {
                    var conditions = new List<string>();
                    foreach (var form in secret.Forms)
                    {
                        command.Parameters.Add(new NpgsqlParameter { Value = form });
                        conditions.Add(type == "bytea"
                            ? $"position(convert_to(${command.Parameters.Count}, 'UTF8') in {Quote(column)}) > 0"
                            : $"strpos({Quote(column)}::text, ${command.Parameters.Count}) > 0");
                    }
                    if (type == "bytea" && secret.Bytes is { } bytes)
                    {
                        command.Parameters.Add(new NpgsqlParameter { Value = bytes });
                        conditions.Add($"position(${command.Parameters.Count} in {Quote(column)}) > 0");
                    }
                    counts.Add($"count(*) filter (where {string.Join(" or ", conditions)})");
                }
                command.CommandText = $"select {string.Join(", ", counts)} from {name}";
                await using var reader = await command.ExecuteReaderAsync(ct);
                await reader.ReadAsync(ct);
                for (var i = 0; i < secrets.Count; i++)
                    if (reader.GetInt64(i) is > 0 and var rows)
                        hits.Add($"{secrets[i].Name} in {schema}.{table}.{column} ({rows} rows)");
            }
        return (hits, columns);
    }
}
