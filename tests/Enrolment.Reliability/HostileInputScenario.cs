using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Enrolment.Reliability.Harness;
using static Enrolment.Reliability.SecurityProbes;

namespace Enrolment.Reliability;

/// <summary>
/// At least 10,000 generated hostile requests (× <see cref="ScenarioContext.Scale"/>) over every route: malformed,
/// truncated and oversized JSON, wrong types, unicode edge cases, injection strings in ids and filters, absurd dates,
/// periods and limits, huge headers, wrong content types and methods, broken credentials. None may answer ≥ 500, every
/// error must be a problem document (the Mimecast route answers Mimecast's envelope), the service must be ready
/// afterwards, and no rejected request may write a row.
/// <para>
/// The traffic runs as one tenant (the last of the run's tenants) whose rows are counted before and after. Most requests
/// are rejected by construction (an invalid id or body, a foreign id). A few kinds may legitimately write (an odd but
/// valid title, an assignment with absurd but representable dates for an empty audience, a completion for a user with no
/// enrolments, a signed Mimecast request spending its request id): the rows one such success writes are measured once
/// before the run, so the rows the whole run may write are known exactly.
/// </para>
/// </summary>
public sealed class HostileInputScenario : IScenario
{
    /// <summary>Client addresses 127.11.x.y: .1.1 for the valid traffic, the rest for requests that fail authentication.</summary>
    private const int AddressRange = 11;

    /// <summary>Failed authentications sent from one address, below the service's 10 per minute, so none is refused with 429 for the address.</summary>
    private const int FailuresPerAddress = 8;

    public string Name => "hostile";
    public string Promise => "Hostile input is refused with a 4xx problem document, never a 5xx, and writes nothing";

    /// <summary>What a request may legitimately write when the service accepts it.</summary>
    private enum Writes { Nothing, Content, Assignment, Completion, MimecastRequestId }

    /// <summary>
    /// One generated request. <paramref name="ValidCredentials"/>: it authenticates (sent from the address that never fails).
    /// <paramref name="BareAllowed"/>: beyond the HTTP server's own hard limits, where it answers before the application runs.
    /// <paramref name="BodyOverLimit"/>: a body over Limits:MaxRequestBodyBytes; Kestrel answers 413 and closes the connection,
    /// so a client still sending (no Expect: 100-continue) may see the connection break instead of the answer.
    /// </summary>
    private sealed record Probe(string Route, string Kind, Func<HttpRequestMessage> Build, bool ValidCredentials, Writes MayWrite = Writes.Nothing,
        bool MalformedJson = false, bool BareAllowed = false, bool Mimecast = false, bool BodyOverLimit = false);

    private sealed record Sent(Probe Probe, Reply Reply);

    /// <summary>The ids of the hostile tenant's own data, so requests reach past "not found" into the handlers.</summary>
    private sealed record Known(string Assignment1, string Assignment2, string Enrolment1, string Enrolment2, string Cursor, string Operation);

    public async Task<ScenarioResult> Run(ScenarioContext context, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var findings = new List<string>();
        var tenant = context.Tenants[^1];
        var auth = tenant.All;
        var random = new Random(context.Seed);
        var clients = new Dictionary<int, HttpClient>();
        HttpClient Client(int n) { lock (clients) return clients.TryGetValue(n, out var c) ? c : clients[n] = context.ClientFrom(Address(AddressRange, n)); }
        var client = Client(0);

        try
        {
            // --------------------------------------------------------------- the tenant's own data, the Mimecast key
            context.Log($"hostile: setting up tenant {tenant.TenantId}");
            var key = context.IssueMimecastKey is { } issue ? await issue(tenant.TenantId, ct) : null;
            if (key is null) findings.Add("No Mimecast key could be issued in this run: the Mimecast route was probed only without valid signatures.");
            var known = await SetUp(client, auth, ct);
            var markers = key is null ? new[] { tenant.TenantId } : [tenant.TenantId, key.AccessKey];

            // What one accepted request of each kind that may write writes, measured on one valid request each.
            var perSuccess = new Dictionary<Writes, SortedDictionary<string, long>>();
            var generator = new Generator(random, known, key);
            var rows = await QuietTenantRows(context.ConnectionString, tenant.TenantId, markers, ct);
            foreach (var (kind, probe) in generator.Calibration())
            {
                var reply = await client.Exchange(Authorize(probe.Build(), probe, auth), ct);
                if (!Wrote(kind, reply)) throw new InvalidOperationException($"The calibration request for {kind} was not accepted: {reply}");
                var after = await QuietTenantRows(context.ConnectionString, tenant.TenantId, markers, ct);
                perSuccess[kind] = Difference(rows, after);
                rows = after;
                context.Log($"hostile: one accepted {kind} request writes {Describe(perSuccess[kind])}");
            }
            var rowsBefore = rows;

            // --------------------------------------------------------------- the hostile traffic
            var goal = (int)Math.Round(10_000 * context.Scale);
            var total = Math.Max(200, goal);
            var probes = Enumerable.Range(0, total).Select(_ => generator.Next()).ToList();
            context.Log($"hostile: sending {Count(total)} requests (seed {context.Seed})");
            var outcomes = new Sent[probes.Count];
            var failing = 0;
            var addressOf = probes.Select(p => p.ValidCredentials ? 0 : 1 + failing++ / FailuresPerAddress).ToArray();
            var sent = 0;
            await ForEachConcurrently(Enumerable.Range(0, probes.Count), 8, async i =>
            {
                var probe = probes[i];
                HttpRequestMessage request;
                try { request = probe.ValidCredentials ? Authorize(probe.Build(), probe, auth) : probe.Build(); }
                catch (Exception e) when (e is UriFormatException or FormatException or InvalidOperationException)
                {
                    // HttpClient itself refuses to send it (an unparseable URL or header): nothing reached the service.
                    outcomes[i] = new Sent(probe, new Reply(-1, null, "", [], TimeSpan.Zero, e.Message));
                    return;
                }
                outcomes[i] = new Sent(probe, await Client(addressOf[i]).Exchange(request, ct));
                if (Interlocked.Increment(ref sent) % 2000 == 0) context.Log($"hostile: {Count(sent)} sent");
            }, ct);

            var ready = await client.Exchange(Request(HttpMethod.Get, "/health/ready", null), ct);
            var rowsAfter = await QuietTenantRows(context.ConnectionString, tenant.TenantId, markers, ct);

            // --------------------------------------------------------------- judging
            var unsendable = outcomes.Count(o => o.Reply.Status == -1);
            var serverErrors = outcomes.Where(o => o.Reply.Status >= 500).ToList();
            var noAnswer = outcomes.Where(o => o.Reply.Status == 0 && !o.Probe.BodyOverLimit).ToList();
            var overLimit = outcomes.Where(o => o.Probe.BodyOverLimit).ToList();
            // In-process the test server enforces no body limit (Kestrel's): the handler answers instead, so only out of process is 413 the goal.
            var overLimitWrong = context.Service is null ? [] : overLimit.Where(o => o.Reply.Status is not (0 or 413)).ToList();
            var notProblems = outcomes.Where(o => o.Reply.Status is >= 400 and < 500 && WhyNotAnError(o) is not null).ToList();
            var bare = outcomes.Where(o => o.Probe.BareAllowed && o.Reply.Status is >= 400 and < 500 && o.Reply.Body.Length == 0).ToList();
            var internals = new List<Sent>();
            foreach (var o in outcomes.Where(o => o.Reply.Status >= 400 && Internals(o.Reply.Body, "") is not null))
                if (Internals(o.Reply.Body, await Carried(o.Probe)) is not null) internals.Add(o);
            var acceptedByMistake = outcomes.Where(o => o.Reply.Ok && o.Probe.MayWrite == Writes.Nothing && IsWrite(o.Probe)).ToList();
            var malformed = outcomes.Where(o => o.Probe.MalformedJson && o.Probe.ValidCredentials).ToList();
            var malformedWrong = malformed.Where(o => o.Reply.Status is not (400 or 422)).ToList();

            var expected = new SortedDictionary<string, long>(StringComparer.Ordinal);
            var accepted = new Dictionary<Writes, int>();
            foreach (var kind in perSuccess.Keys)
            {
                accepted[kind] = outcomes.Count(o => o.Probe.MayWrite == kind && Wrote(kind, o.Reply));
                foreach (var (table, count) in perSuccess[kind]) expected[table] = expected.GetValueOrDefault(table) + count * accepted[kind];
            }
            var written = Difference(rowsBefore, rowsAfter);
            var unexplained = Difference(expected, written);

            Report(findings, "answered 5xx", serverErrors);
            Report(findings, "got no answer", noAnswer);
            Report(findings, "sent a body over the limit and were answered other than 413", overLimitWrong);
            Report(findings, "answered an error that is not a problem document (or, on the Mimecast route, not its error envelope)", notProblems, o => WhyNotAnError(o)!);
            Report(findings, "answered an error that shows the service's internals", internals, o => $"it holds '{Internals(o.Reply.Body, "")}'");
            Report(findings, "were built to be refused but were accepted", acceptedByMistake);
            Report(findings, "sent malformed JSON with valid credentials and were not answered 400 or 422", malformedWrong);
            if (ready.Status != 200) findings.Add($"GET /health/ready after the run answered {ready}.");
            if (unexplained.Count > 0)
                findings.Add($"Rows written beyond what the accepted requests account for: {Describe(unexplained)} (written {Describe(written)}, accounted {Describe(expected)}).");
            if (bare.Count > 0)
                findings.Add($"{Count(bare.Count)} requests beyond the HTTP server's own rules (a path with an encoded NUL, a request line over 8 KiB, " +
                             "headers over twice Limits:MaxRequestHeadersBytes, more than 100 headers) " +
                             $"were refused by Kestrel before the application ran, with an empty body ({ByStatus(bare.Select(b => b.Reply.Status))}): no problem document is possible there.");

            var figures = new List<Figure>
            {
                new("requests", Count(total), $"≥ {Count(goal)}", total >= goal),
                new("routes probed", Count(probes.Select(p => p.Route).Distinct().Count())),
                new("answers by status", ByStatus(outcomes.Where(o => o.Reply.Status != -1).Select(o => o.Reply.Status))),
                new("generated requests HttpClient would not send", Count(unsendable)),
                new("answers ≥ 500", Count(serverErrors.Count), "0", serverErrors.Count == 0),
                new("no answer (connection reset or timeout)", Count(noAnswer.Count), "0", noAnswer.Count == 0),
                new("bodies over 4 MiB: 413 / connection closed while still sending", $"{Count(overLimit.Count(o => o.Reply.Status == 413))} / {Count(overLimit.Count(o => o.Reply.Status == 0))} of {Count(overLimit.Count)}", context.Service is null ? "" : "all 413 or closed", context.Service is null ? null : overLimitWrong.Count == 0),
                new("4xx that are not problem documents (Mimecast route: not its envelope)", Count(notProblems.Count), "0", notProblems.Count == 0),
                new("4xx with an empty body from Kestrel beyond its hard limits", Count(bare.Count)),
                new("errors showing internals (stack frames, .NET type names, SQL)", Count(internals.Count), "0", internals.Count == 0),
                new("malformed JSON answered 400 or 422", $"{Count(malformed.Count - malformedWrong.Count)} of {Count(malformed.Count)}", "all", malformedWrong.Count == 0),
                new("requests built to be refused that were accepted", Count(acceptedByMistake.Count), "0", acceptedByMistake.Count == 0),
                new("odd but valid writes accepted", string.Join(", ", accepted.Select(a => $"{a.Key}: {Count(a.Value)}"))),
                new("rows written not accounted for by accepted requests", Describe(unexplained), "none", unexplained.Count == 0),
                new("GET /health/ready after", ready.Status.ToString(System.Globalization.CultureInfo.InvariantCulture), "200", ready.Status == 200),
            };
            var passed = serverErrors.Count == 0 && noAnswer.Count == 0 && overLimitWrong.Count == 0 && internals.Count == 0 && notProblems.Count == 0 && acceptedByMistake.Count == 0
                         && malformedWrong.Count == 0 && ready.Status == 200 && unexplained.Count == 0;
            return new ScenarioResult(Name, Promise, passed, figures, findings, clock.Elapsed);
        }
        finally
        {
            foreach (var c in clients.Values) c.Dispose();
        }
    }

    private static bool IsWrite(Probe probe) => probe.Kind.StartsWith("write", StringComparison.Ordinal);

    private static bool Wrote(Writes kind, Reply reply) => kind switch
    {
        Writes.MimecastRequestId => reply.Answered && reply.Status is not (401 or 429),
        Writes.Nothing => false,
        _ => reply.Ok,
    };

    private static HttpRequestMessage Authorize(HttpRequestMessage request, Probe probe, AuthenticationHeaderValue auth)
    {
        if (!probe.Mimecast && request.Headers.Authorization is null) request.Headers.Authorization = auth;
        return request;
    }

    /// <summary>
    /// Null when an error answer is what the contract says: a problem document, or on the Mimecast route a Mimecast error
    /// envelope (meta.status = the HTTP status, one fail item with a code), or an empty answer where only the HTTP server
    /// could answer (beyond its hard limits) or no body may be sent (HEAD).
    /// </summary>
    private static string? WhyNotAnError(Sent o)
    {
        if (WhyNotAProblem(o.Reply) is not { } why) return null;
        if (o.Probe.BareAllowed && o.Reply.Body.Length == 0) return null;
        if (o.Probe.Kind == "method HEAD" && o.Reply.Body.Length == 0) return null;
        if (o.Probe.Mimecast && IsMimecastError(o.Reply)) return null;
        return why;
    }

    /// <summary>
    /// What gives the implementation away in an error body (PRODUCT.md: "no internals"), or null. Text the request itself
    /// carried does not count: the Mimecast envelope echoes the request item, injection strings included.
    /// </summary>
    private static string? Internals(string body, string carried) =>
        new[] { "   at ", ".cs:line", "Exception", "Enrolment.Api.", "Enrolment.Domain.", "System.", "Microsoft.", "Marten", "Wolverine", "Npgsql", "JasperFx", "mt_doc_", "mt_events", "select ", "/work/" }
            .FirstOrDefault(marker => body.Contains(marker, StringComparison.Ordinal) && !carried.Contains(marker, StringComparison.Ordinal));

    /// <summary>The probe's URL (as sent and decoded), headers and body as text (built again: requests are single-use).</summary>
    private static async Task<string> Carried(Probe probe)
    {
        using var request = probe.Build();
        var headers = string.Join("\n", request.Headers.Select(h => $"{h.Key}: {string.Join(",", h.Value)}"));
        var url = request.RequestUri?.OriginalString ?? "";
        return $"{url}\n{Uri.UnescapeDataString(url)}\n{headers}\n{(request.Content is null ? "" : await request.Content.ReadAsStringAsync())}";
    }

    private static bool IsMimecastError(Reply reply)
    {
        if (reply.ContentType != "application/json") return false;
        try
        {
            var json = JsonNode.Parse(reply.Body);
            return json?["meta"]?["status"]?.GetValue<int>() == reply.Status
                   && json["fail"]?[0]?["errors"]?[0]?["code"]?.GetValue<string>() is { Length: > 0 };
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException or FormatException) { return false; }
    }

    private static void Report(List<string> findings, string what, IReadOnlyCollection<Sent> outcomes, Func<Sent, string>? why = null)
    {
        if (outcomes.Count == 0) return;
        var examples = outcomes.GroupBy(o => (o.Probe.Route, o.Probe.Kind, o.Reply.Status)).Take(8)
            .Select(g => $"{g.Key.Route} [{g.Key.Kind}] ×{g.Count()} → {g.First().Reply}{(why is null ? "" : $" ({why(g.First())})")}");
        findings.Add($"{Count(outcomes.Count)} requests {what}: " + string.Join("; ", examples));
    }

    /// <summary>Content, an audience of three, two assignments of it (so an enrolment of one can be asked for under the other).</summary>
    private static async Task<Known> SetUp(HttpClient client, AuthenticationHeaderValue auth, CancellationToken ct)
    {
        await client.PutContent(auth, "hx-content", "Hostile input", ct);
        await client.PutContent(auth, "hx-content-2", "Hostile input 2", ct);
        await client.SetMembers(auth, "hx-aud", ["hx-u1", "hx-u2", "hx-u3"], ct);
        var a1 = await client.CreateAssignment(auth, new { audienceId = "hx-aud", primaryContentId = "hx-content", completionPeriod = "P30D" }, ct);
        var a2 = await client.CreateAssignment(auth, new { audienceId = "hx-aud", primaryContentId = "hx-content-2", completionPeriod = "P30D" }, ct);
        var e1 = (await client.Enrolments(auth, a1, ct))[0]["id"]!.GetValue<string>();
        var e2 = (await client.Enrolments(auth, a2, ct))[0]["id"]!.GetValue<string>();
        var page = (await client.Get($"/assignments/{a1}/enrolments?limit=1", auth, ct)).Expect(200, "first page").Json;
        var cursor = page["nextCursor"]!.GetValue<string>();
        var accepted = (await client.Put("/audiences/hx-aud/members", auth, new { userIds = new[] { "hx-u1", "hx-u2", "hx-u3" } }, ct)).Expect(202, "same members again");
        var operation = accepted.OperationHref()["/operations/".Length..];
        await client.WaitForOperation(auth, accepted.OperationHref(), TimeSpan.FromMinutes(1), ct);
        return new Known(a1.ToString(), a2.ToString(), e1, e2, cursor, operation);
    }

    /// <summary>The request generator: every route, seeded, round robin over the routes with a random variant each time.</summary>
    private sealed class Generator(Random random, Known known, MimecastKeySet? key)
    {
        private int _unique;
        private int _turn;
        private int Unique() => Interlocked.Increment(ref _unique);
        private T Pick<T>(IReadOnlyList<T> items) => items[random.Next(items.Count)];
        private bool Chance(double p) => random.NextDouble() < p;

        /// <summary>One valid request of each kind that may write, to measure what it writes.</summary>
        public IEnumerable<(Writes, Probe)> Calibration()
        {
            yield return (Writes.Content, Json("write PUT /content/{id}", "valid", HttpMethod.Put, $"/content/hx-w-{Unique()}", """{"title":"calibration"}""", Writes.Content));
            yield return (Writes.Assignment, Json("write POST /assignments", "valid", HttpMethod.Post, "/assignments",
                """{"audienceId":"hx-empty","primaryContentId":"hx-content","completionPeriod":"P30D"}""", Writes.Assignment));
            yield return (Writes.Completion, Json("write POST /completions", "valid", HttpMethod.Post, "/completions",
                $$"""{"completionId":"hx-c-{{Unique()}}","userId":"hx-nobody","contentId":"hx-content","completedAt":"2024-01-01T00:00:00.000Z"}""", Writes.Completion));
            if (key is not null)
                yield return (Writes.MimecastRequestId, new Probe(SecurityProbes.MimecastRoute, "valid", () => MimecastRequest(key, """{"data":[]}"""), true, Writes.MimecastRequestId, Mimecast: true));
        }

        public Probe Next()
        {
            Func<Probe>[] routes =
            [
                GetEnrolment, GetEvents, ListAssignmentEnrolments, ListUserEnrolments, GetAssignment, DeleteAssignment, CreateAssignment,
                ReplaceMembers, AddMembers, RemoveMember, GetMembers, PutContent, GetContent, PostCompletion, ReminderOrArchive, GetOperation,
                MimecastRoute, Infrastructure, WrongMethod, WrongContentType, HugeHeaders, BrokenCredentials, UnknownPaths,
            ];
            var probe = routes[_turn++ % routes.Length]();
            // Kestrel refuses a path with an encoded NUL itself (400, empty body), before the application runs.
            try
            {
                using var request = probe.Build();
                if (request.RequestUri?.OriginalString.Contains("%00", StringComparison.Ordinal) == true) probe = probe with { BareAllowed = true };
            }
            catch (Exception e) when (e is UriFormatException or FormatException or InvalidOperationException) { }
            return probe;
        }

        // ------------------------------------------------------------------- hostile values

        /// <summary>Never a valid external id (a character outside [A-Za-z0-9._:@-], empty, or over 64 characters).</summary>
        private static readonly string[] InvalidIds =
        [
            "' OR '1'='1", "'; drop table enrolment.mt_events; --", "\" or \"\"=\"", "1; select pg_sleep(10)", "a' || pg_sleep(5) || '",
            "$.items[*]", "@.status == \"open\"", "$..*", "(a+)+$", "^(a|aa)+$", ".*", "[", "\\", "%", "_%", "a b", "a+b", "a,b", "a;b",
            "../../etc/passwd", "..\\..\\windows\\win.ini", "..%2f..%2f", "%2e%2e%2f", "a\0b", "\0", "\u202Eexe.txt", "e\u0301\u0301\u0301",
            "\U0001F600", "\U0001F468\u200D\U0001F469\u200D\U0001F467", "\uFEFF", "\u200B", "Ω", "ﬁ", "İ", "ß", "١٢٣", "<script>alert(1)</script>",
            "${jndi:ldap://x/a}", "{{7*7}}", "%s%s%s%n", "\r\nX-Injected: 1", "\t", "a/b", "a?b", "a#b", new string('a', 65), new string('a', 1000),
            "null\0", "{}", "[]", "\"quoted\"", "a\u0085b", "\ud800", "x\udc00y",
        ];

        /// <summary>Odd but valid external ids.</summary>
        private static readonly string[] OddValidIds = ["null", "undefined", "NaN", "-1", "0", "..", "a..b", "a:b@c", "CON", "___", new string('a', 64), "-", "@", ":"];

        private static readonly string[] Dates =
        [
            "0000-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.9999999Z", "9999-12-31T23:59:59.999Z", "-0001-01-01T00:00:00Z",
            "2024-02-30T00:00:00Z", "2024-02-29T00:00:00Z", "2024-01-01T00:00:00+14:00", "2024-01-01T00:00:00-12:00", "2024-01-01T00:00:00+25:00",
            "2024-01-01T00:00:00", "2024-01-01", "1700000000", "now", "2024-01-01T24:00:00Z", "2024-13-01T00:00:00Z", "2024-01-01T00:00:60Z",
            "+002024-01-01T00:00:00Z", "2024-01-01T00:00:00.123456789Z", "2024-01-01T00:00:00,5Z", "2024-W01-1", " 2024-01-01T00:00:00Z",
            "2024-01-01T00:00:00.000Z", "2099-01-01T00:00:00.000Z", "1970-01-01T00:00:00Z", "2024-01-01T00:00:00z", "2024-01-01t00:00:00Z", "",
        ];

        private static readonly string[] Periods =
        [
            "P9999999Y", "PT0S", "P-1D", "P1Y2M3DT4H5M6.7S", "P0D", "PT-1S", "P1W", "P", "PT", "30D", "P30", "p30d", "P1.5D",
            "PT9223372036854775807S", "P2147483647D", "P1Y-1M", "-P1D", "P1DT", "PT1H30M", "P1000Y", "P30D", "P1M", "PT0.0000001S", "",
        ];

        private static readonly string[] Zones =
        [
            "Etc/UTC", "Europe/London", "../../etc/passwd", "UTC", "Mars/Olympus", "", "America/Argentina/ComodRivadavia", "+01:00", "EST5EDT",
            "europe/london", "Etc/GMT+14", "Etc/GMT-15", "Europe/London\0", "Asia/Kathmandu",
        ];

        private static readonly string[] Limits =
            ["0", "-1", "501", "500", "1", "9223372036854775808", "9223372036854775807", "2147483648", "1e3", "abc", "", " 5", "5 ", "0x10", "١٢", "+5", "05", "1.5", "NaN", "∞"];

        private static readonly string[] Statuses =
            ["open", "OPEN", "Open", "unassigned", "deleted", "open,complete", "open' OR 1=1 --", "%", "*", "", "null", "complete\0", "$ne"];

        /// <summary>Raw JSON string literals with unicode edge cases (lone surrogates escaped, NUL, RTL, combining, emoji, BOM).</summary>
        private static readonly string[] UnicodeLiterals =
        [
            "\"\\ud800\"", "\"a\\udc00b\"", "\"\\udbff\\udbff\"", "\"a\\u0000b\"", "\"\\u0000\"", "\"\\u202eexe.txt\"", "\"e\\u0301\\u0301\\u0301\"",
            "\"\\ud83d\\ude00\"", "\"\\ufeff\"", "\"\\u200b\"", "\"\\u0085\"", "\"\\uffff\"", "\"\\ufffe\"", "\"\u0645\u0631\u062d\u0628\u0627\"",
        ];

        /// <summary>A valid title, however odd (what may be stored).</summary>
        private static readonly string[] OddTitles =
        [
            "\"\\ud83d\\ude00 emoji\"", "\"\\u202eRTL override\"", "\"e\\u0301\\u0301\\u0301\"", "\"' OR '1'='1\"", "\"<script>alert(1)</script>\"",
            "\"\"", "null", "\"   \"", "\"\\u200b\"", "\"\\ufeff\"", $"\"{new string('t', 500)}\"", "\"$..*\"", "\"%s%s%n\"", "\"../../etc/passwd\"",
        ];

        /// <summary>JSON tokens of the wrong type for a string field (and, with numbers, for numeric ones).</summary>
        private static readonly string[] WrongTypes =
            ["1", "1.5", "-0", "1e400", "true", "false", "[]", "{}", "[\"a\"]", "{\"$gt\":\"\"}", "{\"a\":{\"b\":1}}", "9223372036854775808"];

        private static string Str(string s) => System.Text.Json.JsonSerializer.Serialize(s);

        /// <summary>False for strings with lone surrogates: they have no UTF-8 form, so they travel only as JSON escapes.</summary>
        private static bool WellFormed(string s)
        {
            try { _ = new UTF8Encoding(false, true).GetByteCount(s); return true; }
            catch (EncoderFallbackException) { return false; }
        }

        private readonly Dictionary<string, string> _big = [];

        /// <summary>Large bodies are built once and shared by the requests that send them.</summary>
        private string Big(string name, Func<string> build) => _big.TryGetValue(name, out var body) ? body : _big[name] = build();

        /// <summary>A raw JSON string literal of an invalid id; lone surrogates only as escapes (they cannot be encoded as UTF-8).</summary>
        private string InvalidIdLiteral()
        {
            if (Chance(0.3)) return Pick(UnicodeLiterals);
            var id = Pick(InvalidIds);
            return WellFormed(id) ? Str(id) : Pick(UnicodeLiterals);
        }

        /// <summary>
        /// A path segment: mostly escaped, sometimes raw (so '/', '\\', '..' change the route the server sees). Never a raw '?' or
        /// '#': they would cut the segment to a prefix that may be a valid id, turning a request built to be refused into a valid one.
        /// </summary>
        private string Segment(string value)
        {
            if (Chance(0.2) && WellFormed(value) && !value.Any(c => char.IsControl(c) || c is '?' or '#')) return value;
            try { return Uri.EscapeDataString(value); }
            catch (UriFormatException) { return "%ED%A0%80"; }
        }

        private string InvalidIdSegment() => Chance(0.15) ? Pick(RawSegments) : Segment(Pick(InvalidIds));

        /// <summary>Percent-encoded bytes that are not valid UTF-8 (overlong '/', an encoded surrogate, 0xFF) and encoded traversal.</summary>
        private static readonly string[] RawSegments = ["%C0%AF", "%ED%A0%80", "%FF", "%00", "..%2F..%2F", "%2e%2e%2f", "%252e%252e", "%E2%80%AE", "%C0%80"];

        private string GuidSegment(string real) => random.Next(10) switch
        {
            0 or 1 => real,
            2 => Guid.NewGuid().ToString(),
            3 => Guid.NewGuid().ToString("N"),
            4 => Guid.NewGuid().ToString("B"),
            5 => real.ToUpperInvariant(),
            6 => "00000000-0000-0000-0000-000000000000",
            7 => Segment(real + "' OR '1'='1"),
            _ => InvalidIdSegment(),
        };

        private string Query(params (string Name, string[] Values)[] parameters)
        {
            var parts = new List<string>();
            foreach (var (name, values) in parameters)
                if (Chance(0.5))
                    parts.Add($"{name}={Segment(Chance(0.3) ? Pick(InvalidIds) : Pick(values))}");
            if (Chance(0.1)) parts.Add($"limit=1&limit={Segment(Pick(Limits))}");
            if (Chance(0.05)) parts.Add("x=" + new string('q', 2000));
            return parts.Count == 0 ? "" : "?" + string.Join("&", parts);
        }

        /// <summary>Malformed JSON: the valid body truncated, corrupted, wrapped or replaced.</summary>
        private string Malformed(string valid) => random.Next(14) switch
        {
            0 => valid[..random.Next(1, valid.Length)],
            1 => valid.Replace("\"", ""),
            2 => valid + " trailing",
            3 => valid.Replace("}", ",}"),
            4 => valid.Replace("\"", "'"),
            5 => "{",
            6 => "/* comment */" + valid,
            7 => "{\"a\":",
            8 => new string('[', 10_000) + new string(']', 10_000),
            9 => "{\"a\":" + string.Concat(Enumerable.Repeat("{\"a\":", 200)) + "1" + new string('}', 201),
            10 => valid.Replace(":", ":NaN,\"x\":"),
            11 => "\u0000" + valid,
            12 => valid.Insert(valid.Length / 2, "\\"),
            _ => "{\"a\":1}{\"b\":2}",
        };

        private Probe Json(string route, string kind, HttpMethod method, string url, string json, Writes writes = Writes.Nothing, bool malformed = false) =>
            new(route, kind, () => Request(method, url, null, json), true, writes, MalformedJson: malformed);

        private Probe Bytes(string route, string kind, HttpMethod method, string url, byte[] body, string? contentType, Writes writes = Writes.Nothing) =>
            new(route, kind, () =>
            {
                var request = new HttpRequestMessage(method, url) { Content = new ByteArrayContent(body) };
                if (contentType is not null) request.Content.Headers.TryAddWithoutValidation("Content-Type", contentType);
                return request;
            }, true, writes);

        private Probe Get(string route, string kind, string url) => new(route, kind, () => Request(HttpMethod.Get, url, null), true);

        // ------------------------------------------------------------------- the routes

        private Probe GetEnrolment()
        {
            var url = $"/assignments/{GuidSegment(known.Assignment1)}/enrolments/{GuidSegment(Chance(0.5) ? known.Enrolment1 : known.Enrolment2)}";
            if (Chance(0.7)) url += "?asOf=" + Segment(Chance(0.8) ? Pick(Dates) : Pick(InvalidIds));
            return Get("GET /assignments/{id}/enrolments/{id}", "ids, asOf", url);
        }

        private Probe GetEvents() =>
            Get("GET /assignments/{id}/enrolments/{id}/events", "ids", $"/assignments/{GuidSegment(known.Assignment1)}/enrolments/{GuidSegment(known.Enrolment1)}/events{Query(("asOf", Dates))}");

        private Probe ListAssignmentEnrolments() =>
            Get("GET /assignments/{id}/enrolments", "filters", $"/assignments/{GuidSegment(known.Assignment1)}/enrolments" +
                Query(("status", Statuses), ("userId", OddValidIds), ("limit", Limits), ("cursor", [known.Cursor, known.Cursor[..^1], known.Cursor + "A", "AAAAAAAAAAAAAAAAAAAAAA", "=", Guid.NewGuid().ToString()])));

        private Probe ListUserEnrolments()
        {
            var user = Chance(0.3) ? "hx-u1" : Chance(0.5) ? InvalidIdSegment() : Segment(Pick(OddValidIds));
            return Get("GET /users/{id}/enrolments", "filters", $"/users/{user}/enrolments" +
                Query(("status", Statuses), ("limit", Limits), ("cursor", [known.Cursor, "AAAAAAAAAAAAAAAAAAAAAA", "%%%", new string('A', 5000)])));
        }

        private Probe GetAssignment() => Get("GET /assignments/{id}", "id", $"/assignments/{GuidSegment(known.Assignment1)}{Query(("asOf", Dates))}");

        private Probe DeleteAssignment()
        {
            // Never the tenant's real assignments: removing one is a valid request.
            var id = Chance(0.5) ? Guid.NewGuid().ToString() : InvalidIdSegment();
            return new Probe("DELETE /assignments/{id}", "write id", () => Request(HttpMethod.Delete, $"/assignments/{id}", null), true);
        }

        private Probe CreateAssignment()
        {
            const string route = "POST /assignments";
            var body = new Dictionary<string, string>
            {
                ["audienceId"] = Str("hx-empty"), ["primaryContentId"] = Str("hx-content"), ["completionPeriod"] = Str("P30D"),
            };
            string Serialize() => "{" + string.Join(",", body.Select(b => $"{Str(b.Key)}:{b.Value}")) + "}";
            switch (random.Next(6))
            {
                case 0: // absurd but possibly valid schedule for an audience with no members: may be created
                    body.Remove("completionPeriod");
                    foreach (var (field, pool) in new[] { ("availableDate", Dates), ("completionPeriod", Periods), ("dueDate", Dates), ("recurrence", Periods), ("timeZone", Zones) })
                        if (Chance(0.5)) body[field] = Str(Pick(pool));
                    return Json(route, "write schedule", HttpMethod.Post, "/assignments", Serialize(), Writes.Assignment);
                case 1: // an invalid id
                    body[Pick(new[] { "audienceId", "primaryContentId" })] = Chance(0.2) ? "null" : InvalidIdLiteral();
                    return Json(route, "write invalid id", HttpMethod.Post, "/assignments", Serialize());
                case 2: // a wrong type
                    body[Pick(body.Keys.Concat(["availableDate", "dueDate", "recurrence", "timeZone"]).ToArray())] = Pick(WrongTypes);
                    return Json(route, "write wrong type", HttpMethod.Post, "/assignments", Serialize());
                case 3: // a schedule that is invalid whatever the rest: both period and due date, negative or zero periods
                    body["dueDate"] = Str("2099-01-01T00:00:00.000Z");
                    body["completionPeriod"] = Str(Pick(new[] { "P30D", "PT0S", "P-1D" }));
                    return Json(route, "write invalid schedule", HttpMethod.Post, "/assignments", Serialize());
                case 4:
                    return Json(route, "write malformed JSON", HttpMethod.Post, "/assignments", Malformed(Serialize()), malformed: true);
                default: // a body that is not an object, or one far too large
                    return Json(route, "write not an object", HttpMethod.Post, "/assignments",
                        Pick(new[] { "null", "[]", "\"assignment\"", "123", "true", Big("assignments", () => "[" + string.Join(",", Enumerable.Repeat(Serialize(), 2000)) + "]") }));
            }
        }

        private string MembersBody()
        {
            var users = Enumerable.Range(0, random.Next(0, 4)).Select(_ => Str("hx-n" + random.Next(1000))).ToList();
            return random.Next(6) switch
            {
                0 or 1 => "{\"userIds\":[" + string.Join(",", users.Append(InvalidIdLiteral()).OrderBy(_ => random.Next())) + "]}",
                2 => "{\"userIds\":" + Pick(new[] { "null", "\"hx-u1\"", "1", "{}", "[1,2]", "[null]", "[[\"a\"]]", "[{\"id\":\"a\"}]" }) + "}",
                3 => Pick(new[] { "{}", "null", "[]", "{\"users\":[\"a\"]}" }),
                4 => Big("members", () => "{\"userIds\":[" + string.Join(",", Enumerable.Range(0, 100_001).Select(i => $"\"u{i}\"")) + "]}"),
                _ => "{\"userIds\":[" + string.Join(",", Enumerable.Repeat("\"hx-u1\"", 50).Append(Str(new string('u', 65)))) + "]}",
            };
        }

        private Probe Members(string route, HttpMethod method)
        {
            if (Chance(0.2)) return Json(route, "write invalid audience", method, $"/audiences/{InvalidIdSegment()}/members", "{\"userIds\":[\"hx-n1\"]}");
            if (Chance(0.15)) return Json(route, "write malformed JSON", method, "/audiences/hx-aud/members", Malformed("{\"userIds\":[\"hx-n1\",\"hx-n2\"]}"), malformed: true);
            return Json(route, "write invalid members", method, "/audiences/hx-aud/members", MembersBody());
        }

        private Probe ReplaceMembers() => Members("PUT /audiences/{id}/members", HttpMethod.Put);
        private Probe AddMembers() => Members("POST /audiences/{id}/members", HttpMethod.Post);

        private Probe RemoveMember()
        {
            // Never a real member (hx-u1..3 of hx-aud): removing one is a valid request.
            var url = random.Next(3) switch
            {
                0 => $"/audiences/{InvalidIdSegment()}/members/hx-u1",
                1 => $"/audiences/hx-aud/members/{InvalidIdSegment()}",
                _ => $"/audiences/hx-aud/members/{Segment(Pick(OddValidIds))}",
            };
            return new Probe("DELETE /audiences/{id}/members/{id}", "write ids", () => Request(HttpMethod.Delete, url, null), true);
        }

        private Probe GetMembers() =>
            Get("GET /audiences/{id}/members", "id", $"/audiences/{(Chance(0.5) ? InvalidIdSegment() : Segment(Pick(OddValidIds)))}/members");

        private Probe PutContent()
        {
            const string route = "PUT /content/{id}";
            switch (random.Next(7))
            {
                case 0: // an odd but valid title: may be stored
                    return Json(route, "write odd title", HttpMethod.Put, $"/content/hx-w-{Unique()}", "{\"title\":" + Pick(OddTitles) + "}", Writes.Content);
                case 1:
                    return Json(route, "write invalid id", HttpMethod.Put, $"/content/{InvalidIdSegment()}", "{\"title\":\"t\"}");
                case 2:
                    return Json(route, "write unicode title", HttpMethod.Put, $"/content/hx-w-{Unique()}", "{\"title\":" + Pick(UnicodeLiterals) + "}", Writes.Content);
                case 3:
                    return Json(route, "write wrong type", HttpMethod.Put, $"/content/hx-w-{Unique()}", "{\"title\":" + Pick(WrongTypes) + "}");
                case 4: // longer than the 500 characters allowed, up to past the 4 MiB body limit (then half the time announced with Expect: 100-continue)
                    var length = Pick(new[] { 501, 5_000, 100_000, 5 * 1024 * 1024 });
                    var huge = Json(route, "write huge title", HttpMethod.Put, "/content/hx-content", Big($"title{length}", () => "{\"title\":\"" + new string('t', length) + "\"}"));
                    if (length < 4 * 1024 * 1024) return huge;
                    var expect = Chance(0.5);
                    return huge with
                    {
                        Kind = expect ? "write body over the limit, Expect: 100-continue" : "write body over the limit", BodyOverLimit = true,
                        Build = () => { var request = huge.Build(); request.Headers.ExpectContinue = expect; return request; },
                    };
                case 5: // overlong UTF-8 ('/' as C0 AF, NUL as C0 80) and an encoded surrogate (ED A0 80): not UTF-8 at all
                    var bytes = Encoding.ASCII.GetBytes("{\"title\":\"a__b\"}");
                    var bad = Pick(new[] { new byte[] { 0xC0, 0xAF }, [0xC0, 0x80], [0xED, 0xA0], [0xFF, 0xFE] });
                    bytes[11] = bad[0]; bytes[12] = bad[1];
                    return Bytes(route, "write overlong UTF-8", HttpMethod.Put, "/content/hx-content", bytes, "application/json");
                default:
                    return Json(route, "write malformed JSON", HttpMethod.Put, "/content/hx-content", Malformed("{\"title\":\"Hostile input\"}"), malformed: true);
            }
        }

        private Probe GetContent() =>
            Get("GET /content/{id}", "id", $"/content/{(Chance(0.5) ? InvalidIdSegment() : Segment(Pick(OddValidIds)))}");

        private Probe PostCompletion()
        {
            const string route = "POST /completions";
            var fields = new Dictionary<string, string>
            {
                ["completionId"] = Str($"hx-c-{Unique()}"), ["userId"] = Str("hx-nobody"), ["contentId"] = Str("hx-content"), ["completedAt"] = Str("2024-01-01T00:00:00.000Z"),
            };
            string Serialize() => "{" + string.Join(",", fields.Select(b => $"{Str(b.Key)}:{b.Value}")) + "}";
            switch (random.Next(5))
            {
                case 0: // an absurd instant or answer, otherwise valid, for a user with no enrolments: may be recorded
                    if (Chance(0.6)) fields["completedAt"] = Str(Pick(Dates));
                    else fields["answer"] = Pick(new[] { "1e308", "-0", "5e-324", "123456789012345678901234567890", "0.1", "-1", "\"87\"", "\"NaN\"", "\"Infinity\"", "null" });
                    return Json(route, "write odd values", HttpMethod.Post, "/completions", Serialize(), Writes.Completion);
                case 1:
                    fields[Pick(new[] { "completionId", "userId", "contentId" })] = Chance(0.2) ? "null" : InvalidIdLiteral();
                    return Json(route, "write invalid id", HttpMethod.Post, "/completions", Serialize());
                case 2:
                    fields[Pick(fields.Keys.Append("answer").ToArray())] = Pick(WrongTypes.Where(t => !double.TryParse(t, System.Globalization.CultureInfo.InvariantCulture, out _)).ToArray());
                    return Json(route, "write wrong type", HttpMethod.Post, "/completions", Serialize());
                case 3:
                    fields["completedAt"] = Str(DateTimeOffset.UtcNow.AddDays(1).ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", System.Globalization.CultureInfo.InvariantCulture));
                    return Json(route, "write future instant", HttpMethod.Post, "/completions", Serialize());
                default:
                    return Json(route, "write malformed JSON", HttpMethod.Post, "/completions", Malformed(Serialize()), malformed: true);
            }
        }

        private Probe ReminderOrArchive()
        {
            var action = Chance(0.5) ? "reminders" : "archive";
            // Never an enrolment under its own assignment: that is a valid request. Under the other assignment it is a 404.
            var url = random.Next(3) switch
            {
                0 => $"/assignments/{known.Assignment1}/enrolments/{known.Enrolment2}/{action}",
                1 => $"/assignments/{InvalidIdSegment()}/enrolments/{known.Enrolment1}/{action}",
                _ => $"/assignments/{known.Assignment1}/enrolments/{(Chance(0.5) ? Guid.NewGuid().ToString() : InvalidIdSegment())}/{action}",
            };
            var body = Chance(0.3) ? Malformed("{}") : null;
            return new Probe($"POST /assignments/{{id}}/enrolments/{{id}}/{action}", "write ids", () => Request(HttpMethod.Post, url, null, body), true);
        }

        private Probe GetOperation() => Get("GET /operations/{id}", "id", $"/operations/{GuidSegment(known.Operation)}");

        private Probe MimecastRoute()
        {
            const string route = "POST " + SecurityProbes.MimecastRoute;
            string UserLiteral() => Chance(0.5) ? InvalidIdLiteral() : Chance(0.5) ? Str(Pick(OddValidIds)) : Pick(WrongTypes);
            var body = random.Next(8) switch
            {
                0 => Malformed("{\"data\":[{\"userId\":\"hx-u1\"}]}"),
                1 => "{\"data\":[" + string.Join(",", Enumerable.Range(0, random.Next(1, 5)).Select(_ => "{\"userId\":" + UserLiteral() + "}")) + "]}",
                2 => "{\"data\":" + Pick(WrongTypes.Append("null").Append("\"x\"").ToArray()) + "}",
                3 => "{\"data\":[],\"meta\":{\"pagination\":{\"pageSize\":" + Pick(new[] { "0", "-1", "501", "9223372036854775808", "\"10\"", "1.5", "null", "[]" }) + "}}}",
                4 => "{\"data\":[],\"meta\":{\"pagination\":{\"pageToken\":" + (Chance(0.5) ? InvalidIdLiteral() : Str(Convert.ToBase64String(Encoding.UTF8.GetBytes("\u0001' OR 1=1")))) + "}}}",
                5 => Big("items", () => "{\"data\":[" + string.Join(",", Enumerable.Repeat("{\"userId\":\"hx-u1\"}", 501)) + "]}"),
                6 => Pick(new[] { "", "null", "[]", "\"data\"", "{\"data\":[null,1,\"a\",[]]}", "{\"meta\":\"x\"}" }),
                _ => Big("user", () => "{\"data\":[{\"userId\":\"" + new string('u', 100_000) + "\"}]}"),
            };
            if (key is not null && Chance(0.7))
                return new Probe(route, "signed, hostile body", () => MimecastRequest(key, body), true, Writes.MimecastRequestId, MalformedJson: false, Mimecast: true);

            // Not (validly) signed: refused before the body is read. One header is replaced (or removed, when the value is null).
            var (header, value) = random.Next(7) switch
            {
                0 => ("Authorization", (string?)null),
                1 => ("Authorization", "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("eu-west-2_X:y"))),
                2 => ("Authorization", $"MC {key?.AccessKey ?? "mc00"}:{Convert.ToBase64String(new byte[20])}"),
                3 => ("x-mc-date", MimecastDate(DateTimeOffset.UtcNow.AddHours(-2))),
                4 => ("x-mc-date", Pick(new[] { "yesterday", MimecastDate(DateTimeOffset.UtcNow) + "' OR 1=1", "", "Tue, 31 Feb 2026 00:00:00 UTC" })),
                5 => ("x-mc-req-id", Pick(new[] { "a b", new string('r', 200), "é" })),
                _ => ("Authorization", Pick(new[] { "MC ", "MC :", "MC a:b:c", "MC " + new string('k', 5000) + ":x" })),
            };
            return new Probe(route, "broken signing", () =>
            {
                var request = key is null ? Request(HttpMethod.Post, SecurityProbes.MimecastRoute, null, body) : MimecastRequest(key, body);
                request.Headers.Remove(header);
                if (value is not null) request.Headers.TryAddWithoutValidation(header, value);
                return request;
            }, false, Mimecast: true);
        }

        private Probe Infrastructure()
        {
            var path = Pick(new[] { "/health/live", "/health/ready", "/openapi/v1.json", "/docs", "/metrics" });
            var query = Query(("x", InvalidIds), ("limit", Limits));
            var segment = InvalidIdSegment();
            return random.Next(4) switch
            {
                0 => new Probe("GET " + path, "query", () => Request(HttpMethod.Get, path + query, null), true),
                1 => new Probe("GET /openapi/{document}.json", "document", () => Request(HttpMethod.Get, $"/openapi/{segment}.json", null), true),
                2 => new Probe("GET /docs/{path}", "path", () => Request(HttpMethod.Get, $"/docs/{segment}", null), true),
                _ => new Probe("POST " + path, "method POST", () => Request(HttpMethod.Post, path, null, "{}"), true),
            };
        }

        private static readonly (string Method, string Url)[] AllRoutes =
        [
            ("GET", "/assignments/{a}/enrolments/{e}"), ("GET", "/assignments/{a}/enrolments"), ("GET", "/users/hx-u1/enrolments"),
            ("GET", "/assignments/{a}/enrolments/{e}/events"), ("POST", "/assignments"), ("GET", "/assignments/{a}"), ("DELETE", "/assignments/{a}"),
            ("PUT", "/audiences/hx-aud/members"), ("POST", "/audiences/hx-aud/members"), ("DELETE", "/audiences/hx-aud/members/hx-u1"),
            ("GET", "/audiences/hx-aud/members"), ("PUT", "/content/hx-content"), ("GET", "/content/hx-content"), ("POST", "/completions"),
            ("POST", "/assignments/{a}/enrolments/{e}/reminders"), ("POST", "/assignments/{a}/enrolments/{e}/archive"), ("GET", "/operations/{o}"),
            ("POST", SecurityProbes.MimecastRoute), ("GET", "/health/ready"), ("GET", "/openapi/v1.json"),
        ];

        private string Fill(string url) => url.Replace("{a}", known.Assignment1).Replace("{e}", known.Enrolment1).Replace("{o}", known.Operation);

        private Probe WrongMethod()
        {
            var (method, url) = Pick(AllRoutes);
            var allowed = AllRoutes.Where(r => r.Url == url).Select(r => r.Method).ToHashSet();
            // PUT/POST/DELETE/PATCH on a route that does not map them; never the route's own method (that would be valid).
            var other = Pick(new[] { "GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS", "TRACE", "HEAD", "FOO" }.Where(m => !allowed.Contains(m)).ToArray());
            var full = Fill(url);
            // Any request to the Mimecast route that is not validly signed counts as a failed authentication there.
            return new Probe($"{method} {url}", "method " + other, () => Request(new HttpMethod(other), full, null, other is "GET" or "HEAD" or "TRACE" ? null : "{}"),
                ValidCredentials: !IsMimecastPath(full));
        }

        private Probe WrongContentType()
        {
            var contentType = Pick(new[]
            {
                "text/plain", "application/xml", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/json; charset=utf-16",
                "application/json; charset=latin1", "application/merge-patch+json", "application/problem+json", "text/json", "application/jsonx", "*/*", "",
                "application/json; charset=\"utf-8\"; x=" + new string('y', 500),
            });
            var utf16 = contentType.Contains("utf-16");
            if (Chance(0.5))
            {
                var json = "{\"title\":\"content type\"}";
                return Bytes("PUT /content/{id}", "write content type", HttpMethod.Put, $"/content/hx-w-{Unique()}", utf16 ? Encoding.Unicode.GetBytes(json) : Encoding.UTF8.GetBytes(json),
                    contentType.Length == 0 ? null : contentType, Writes.Content);
            }
            var completion = $"{{\"completionId\":\"hx-c-{Unique()}\",\"userId\":\"hx-nobody\",\"contentId\":\"hx-content\",\"completedAt\":\"2024-01-01T00:00:00.000Z\"}}";
            return Bytes("POST /completions", "write content type", HttpMethod.Post, "/completions", utf16 ? Encoding.Unicode.GetBytes(completion) : Encoding.UTF8.GetBytes(completion),
                contentType.Length == 0 ? null : contentType, Writes.Completion);
        }

        private Probe HugeHeaders()
        {
            var (method, url) = Pick(AllRoutes.Where(r => r.Method == "GET").ToArray());
            var full = Fill(url);
            var size = Pick(new[] { 20 * 1024, 33 * 1024, 40 * 1024, 60 * 1024, 100 * 1024, 300 * 1024 });
            var many = Chance(0.2);
            var name = Chance(0.5) ? "Cookie" : "X-Big";
            // Kestrel's own hard limits, beyond which it answers before the application: twice the documented 32 KiB, and 100 headers.
            var beyondServer = many || size > 64 * 1024;
            return new Probe($"{method} {url}", many ? "150 headers" : $"{size / 1024} KiB header", () =>
            {
                var request = Request(HttpMethod.Get, full, null);
                if (many)
                    for (var i = 0; i < 150; i++) request.Headers.TryAddWithoutValidation($"X-Many-{i}", "v");
                else
                    request.Headers.TryAddWithoutValidation(name, new string('h', size));
                return request;
            }, true, BareAllowed: beyondServer);
        }

        private Probe BrokenCredentials()
        {
            var (method, url) = Pick(AllRoutes.Where(r => r.Url != SecurityProbes.MimecastRoute && !r.Url.StartsWith("/health", StringComparison.Ordinal) && !r.Url.StartsWith("/openapi", StringComparison.Ordinal)).ToArray());
            var full = Fill(url);
            string B64(string s) => Convert.ToBase64String(Encoding.UTF8.GetBytes(s));
            var authorization = random.Next(11) switch
            {
                0 => null,
                1 => "Basic !!not*base64%%",
                2 => "Basic " + B64("eu-west-2_Hostile:es_wrong"),
                3 => "Bearer " + B64("x:y"),
                4 => "Basic " + B64("eu-west-2_Hostile:"),
                5 => "Basic " + B64("eu-west-2_X' OR 1=1 --:secret"),
                6 => "Basic " + B64("eu-west-2_Hostile:" + new string('s', 300)),
                7 => "Basic " + new string('A', 600),
                8 => "Basic",
                9 => "Basic " + Convert.ToBase64String([0xC0, 0xAF, 0x3A, 0x41]),
                _ => "MC mc00:" + Convert.ToBase64String(new byte[20]),
            };
            var twoHeaders = Chance(0.1);
            return new Probe($"{method} {url}", twoHeaders ? "two Authorization headers" : "broken credentials", () =>
            {
                var request = Request(new HttpMethod(method), full, null, method is "GET" or "DELETE" ? null : "{}");
                if (authorization is not null) request.Headers.TryAddWithoutValidation("Authorization", authorization);
                if (twoHeaders) request.Headers.TryAddWithoutValidation("Authorization", "Basic " + B64("a:b"));
                return request;
            }, false);
        }

        private Probe UnknownPaths()
        {
            var path = Pick(new[]
            {
                $"/assignments/{known.Assignment1}/enrolments/{known.Enrolment1}/unknown", "/assignments/", "/enrolments", "/", "/%2e%2e/%2e%2e/etc/passwd",
                "/api/awareness-training/user/get-training-details/extra", "/content", "/users//enrolments", "/audiences/hx-aud", "/.env", "/wp-admin",
                $"/assignments/{known.Assignment1}//enrolments", "/ASSIGNMENTS/" + known.Assignment1, "/content/hx-content/", "/%C0%AE%C0%AE/",
                "/assignments/" + new string('a', 10_000),
            });
            var tooLong = path.Length > 8 * 1024; // Kestrel's request line limit: answered before the application
            return new Probe("unknown paths", "path", () => Request(HttpMethod.Get, path, null), ValidCredentials: !IsMimecastPath(path), BareAllowed: tooLong);
        }

        private static bool IsMimecastPath(string path) => path.StartsWith(SecurityProbes.MimecastRoute, StringComparison.OrdinalIgnoreCase);
    }
}
