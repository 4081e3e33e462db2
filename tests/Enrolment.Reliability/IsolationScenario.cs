using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Enrolment.Reliability.Harness;
using static Enrolment.Reliability.SecurityProbes;

namespace Enrolment.Reliability;

/// <summary>
/// Tenant A and tenant B each get content, audiences, assignments, enrolments, completions and reminders (some ids the
/// same in both, as real customers' ids would be). Then, seeded and randomized, tenant B (and mixed credentials: A's
/// tenant id with B's secret, A's Mimecast access key signed with B's secret key, …) probes every route with A's ids,
/// A's cursors and page tokens, and A's users. A leak is a 2xx that must not have been one (a foreign id, foreign
/// credentials), a 2xx whose body holds something of A's that the request did not carry, or any change to A's data:
/// A's read models (as A reads them through the API) and A's rows (every table) are compared before and after.
/// </summary>
public sealed class IsolationScenario : IScenario
{
    /// <summary>Client addresses 127.12.x.y: .1.1 tenant A, .1.2 tenant B, the rest for probes that fail authentication.</summary>
    private const int AddressRange = 12;
    private const int FailuresPerAddress = 8;

    public string Name => "isolation";
    public string Promise => "Tenants never see each other's data";

    /// <summary>
    /// One probe. <paramref name="MustFail"/>: any 2xx is a leak (it names a resource only A has, or carries credentials
    /// that are not B's). Otherwise B may be served its own data, as long as nothing of A's is in it.
    /// <paramref name="Authenticates"/>: the credentials are valid (B's), so it comes from B's address.
    /// </summary>
    private sealed record Probe(string Route, string Credentials, Func<HttpRequestMessage> Build, bool MustFail, bool Authenticates, string Carried);

    /// <summary>What one tenant was given, and the values in it that only that tenant may ever see.</summary>
    private sealed class TenantData
    {
        public required TenantCredentials Tenant { get; init; }
        public MimecastKeySet? Key { get; set; }
        public List<string> Assignments { get; } = [];
        public List<(string Assignment, string Enrolment, string User)> Enrolments { get; } = [];
        public List<string> Operations { get; } = [];
        public List<string> Cursors { get; } = [];
        public List<string> PageTokens { get; } = [];
        public List<(string Id, string User, string Content, string CompletedAt, double Answer)> Completions { get; } = [];
        public List<string> Users { get; } = [];
        public List<string> OwnUsers { get; } = [];
        public List<string> OwnAudiences { get; } = [];
        public List<string> OwnContent { get; } = [];
        public List<string> Titles { get; } = [];
        public required string SharedContent { get; init; }
        public required string SharedAudience { get; init; }
    }

    public async Task<ScenarioResult> Run(ScenarioContext context, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var findings = new List<string>();
        var random = new Random(context.Seed);
        var tag = "iso" + random.Next(10_000, 100_000);
        var (tenantA, tenantB) = (context.Tenants[0], context.Tenants[1]);
        var clients = new Dictionary<int, HttpClient>();
        HttpClient Client(int n) { lock (clients) return clients.TryGetValue(n, out var c) ? c : clients[n] = context.ClientFrom(Address(AddressRange, n)); }

        try
        {
            context.Log($"isolation: setting up {tenantA.TenantId} (A) and {tenantB.TenantId} (B), ids tagged {tag}");
            var a = await SetUp(Client(0), tenantA, tag, "a", context, ct);
            var b = await SetUp(Client(1), tenantB, tag, "b", context, ct);
            if (a.Key is null || b.Key is null) findings.Add("No Mimecast keys could be issued in this run: the Mimecast route was probed only with Basic credentials and unsigned requests.");

            var rowMarkers = a.Key is null ? new[] { tenantA.TenantId } : [tenantA.TenantId, a.Key.AccessKey];
            var rowsBefore = WithMessagesInFlight(await QuietTenantRows(context.ConnectionString, tenantA.TenantId, rowMarkers, ct));
            var viewBefore = await ReadEverything(Client(0), a, ct);

            // Values of A's that B can only see through a leak unless its request carried them: the ids the service issued
            // to A, A's titles, A's own users (B never makes them its own), A's tenant id and secrets. Ids B may adopt as its
            // own (content, audience and completion ids are the client's) are no evidence, so they are not in the list.
            var secrets = a.Assignments.Concat(a.Enrolments.Select(e => e.Enrolment)).Concat(a.Operations).Concat(a.OwnUsers).Concat(a.Titles)
                .Append(tenantA.TenantId).Append(tenantA.AllSecret)
                .Concat(a.Key is null ? [] : [a.Key.AccessKey, a.Key.SecretKey, a.Key.AppKey]).Distinct().ToArray();

            // The check's own check: every resource of A's, as A reads it, holds one of those values, so it would be recognised.
            var unrecognisable = viewBefore.Where(v => !secrets.Any(s => v.Value.Contains(s, StringComparison.Ordinal))).Select(v => v.Key).ToList();
            if (unrecognisable.Count > 0) findings.Add($"The leak check would not recognise these resources of A's: {string.Join(", ", unrecognisable)}");

            var total = Math.Max(150, (int)Math.Round(2_000 * context.Scale));
            var generator = new Generator(random, a, b);
            var probes = Enumerable.Range(0, total).Select(_ => generator.Next()).ToList();
            var failing = 0;
            var addressOf = probes.Select(p => p.Authenticates ? 1 : 2 + failing++ / FailuresPerAddress).ToArray();
            context.Log($"isolation: {Count(total)} probes as B with A's ids (seed {context.Seed})");
            var replies = new Reply[probes.Count];
            await ForEachConcurrently(Enumerable.Range(0, probes.Count), 4, async i => replies[i] = await Client(addressOf[i]).Exchange(probes[i].Build(), ct), ct);

            // A 2xx where there must be none is a leak; so is any answer, error documents included, holding one of A's values
            // that the request did not carry (a 404 may echo the id it was asked for, nothing more).
            var leaks = new List<string>();
            for (var i = 0; i < probes.Count; i++)
            {
                var (probe, reply) = (probes[i], replies[i]);
                if (probe.MustFail && reply.Ok) leaks.Add($"{probe.Route} [{probe.Credentials}] answered {reply}");
                else if (secrets.FirstOrDefault(s => reply.Body.Contains(s, StringComparison.Ordinal) && !probe.Carried.Contains(s, StringComparison.Ordinal)) is { } seen)
                    leaks.Add($"{probe.Route} [{probe.Credentials}] returned A's '{seen}': {reply}");
            }
            // A 409 "concurrency-conflict" is B's own identical completions racing each other (four probes run at once and
            // may pick the same one): the documented answer to a lost race. Any other 409 means B met A's record.
            var conflicts = probes.Zip(replies).Where(p => p.First.Route == "POST /completions" && p.Second.Status == 409
                && !p.Second.Body.Contains("\"concurrency-conflict\"", StringComparison.Ordinal)).ToList();
            foreach (var (probe, reply) in conflicts)
                leaks.Add($"{probe.Route} [{probe.Credentials}] with A's completionId and A's payload answered 409 (so A's record was seen): {reply}");
            var serverErrors = replies.Count(r => r.Status >= 500 || r.Status == 0);

            var viewAfter = await ReadEverything(Client(0), a, ct);
            var rowsAfter = WithMessagesInFlight(await QuietTenantRows(context.ConnectionString, tenantA.TenantId, rowMarkers, ct));
            var changedViews = viewBefore.Keys.Where(k => viewAfter.GetValueOrDefault(k) != viewBefore[k]).ToList();
            var changedRows = Difference(rowsBefore, rowsAfter);
            if (changedViews.Count > 0)
                leaks.Add($"A's data as A reads it changed: {string.Join(", ", changedViews.Take(5))}{(changedViews.Count > 5 ? $" and {changedViews.Count - 5} more" : "")}");
            if (changedRows.Count > 0) leaks.Add($"A's rows changed: {Describe(changedRows)}");

            findings.AddRange(leaks.Take(20));
            if (leaks.Count > 20) findings.Add($"… and {leaks.Count - 20} more leaks.");
            if (serverErrors > 0)
                findings.Add($"{serverErrors} probes answered 5xx or not at all: " + string.Join("; ", probes.Zip(replies).Where(p => p.Second.Status >= 500 || p.Second.Status == 0).Take(5).Select(p => $"{p.First.Route} → {p.Second}")));

            var figures = new List<Figure>
            {
                new("probes", Count(total)),
                new("routes probed", Count(probes.Select(p => p.Route).Distinct().Count())),
                new("probes by credentials", string.Join(", ", probes.GroupBy(p => p.Credentials).OrderBy(g => g.Key).Select(g => $"{g.Key}: {Count(g.Count())}"))),
                new("answers by status", ByStatus(replies.Select(r => r.Status))),
                new("probes that had to fail (A's ids, foreign credentials) / answered 2xx", $"{Count(probes.Count(p => p.MustFail))} / {Count(probes.Zip(replies).Count(p => p.First.MustFail && p.Second.Ok))}"),
                new("leaks", Count(leaks.Count), "0", leaks.Count == 0),
                new("A's read models and rows unchanged", changedViews.Count == 0 && changedRows.Count == 0 ? "yes" : "no", "yes", changedViews.Count == 0 && changedRows.Count == 0),
                new("A's resources compared", Count(viewBefore.Count)),
                new("A's resources the leak check would not recognise", Count(unrecognisable.Count), "0", unrecognisable.Count == 0),
                new("answers ≥ 500 or none", Count(serverErrors), "0", serverErrors == 0),
            };
            return new ScenarioResult(Name, Promise, leaks.Count == 0 && serverErrors == 0 && unrecognisable.Count == 0, figures, findings, clock.Elapsed);
        }
        finally
        {
            foreach (var c in clients.Values) c.Dispose();
        }
    }

    /// <summary>
    /// Content (one id shared by both tenants, one of the tenant's own), an audience with the same id in both tenants
    /// (shared and own users), an audience of the tenant's own, an assignment on each, a completion, reminders (three on
    /// one enrolment: on the watchlist), an archived enrolment, a cursor and a Mimecast page token.
    /// </summary>
    /// <summary>
    /// A's messages counted once wherever they are: Wolverine's relay moves them from the outbox
    /// (wolverine_outgoing_envelopes) to the queue tables in the background, at a time of its own, so a move after the
    /// 'before' snapshot is the service's own work and no change B could make. B's probes adding or removing one of A's
    /// messages still changes the sum.
    /// </summary>
    private static SortedDictionary<string, long> WithMessagesInFlight(SortedDictionary<string, long> rows)
    {
        static bool InFlight(string table) => table.EndsWith(".wolverine_outgoing_envelopes", StringComparison.Ordinal) || table.StartsWith("wolverine_queues.", StringComparison.Ordinal);
        var merged = new SortedDictionary<string, long>(rows.Where(r => !InFlight(r.Key)).ToDictionary(), StringComparer.Ordinal);
        merged["A's messages (outbox + queues)"] = rows.Where(r => InFlight(r.Key)).Sum(r => r.Value);
        return merged;
    }

    private static async Task<TenantData> SetUp(HttpClient client, TenantCredentials tenant, string tag, string letter, ScenarioContext context, CancellationToken ct)
    {
        var data = new TenantData { Tenant = tenant, SharedContent = $"{tag}-content", SharedAudience = $"{tag}-aud" };
        var auth = tenant.All;
        var title = $"{letter}-title-{Guid.NewGuid():N}";
        var ownContent = $"{tag}-{letter}-content";
        data.Titles.AddRange([title, title + "-own"]);
        data.OwnContent.Add(ownContent);
        await client.PutContent(auth, $"{tag}-content", title, ct);
        await client.PutContent(auth, ownContent, title + "-own", ct);

        string[] shared = [$"{tag}-shared-1", $"{tag}-shared-2", $"{tag}-shared-3"];
        string[] own = [$"{tag}-{letter}-1", $"{tag}-{letter}-2"];
        data.Users.AddRange(shared.Concat(own));
        data.OwnUsers.AddRange(own);
        var ownAudience = $"{tag}-{letter}-aud";
        data.OwnAudiences.Add(ownAudience);
        foreach (var (audience, users) in new[] { ($"{tag}-aud", shared.Concat(own).ToArray()), (ownAudience, own) })
        {
            var accepted = (await client.Put($"/audiences/{audience}/members", auth, new { userIds = users }, ct)).Expect(202, $"PUT /audiences/{audience}/members");
            data.Operations.Add(accepted.OperationHref()["/operations/".Length..]);
            await client.WaitForOperation(auth, accepted.OperationHref(), TimeSpan.FromMinutes(1), ct);
        }
        foreach (var (audience, content) in new[] { ($"{tag}-aud", $"{tag}-content"), (ownAudience, ownContent) })
        {
            var created = (await client.Post("/assignments", auth, new { audienceId = audience, primaryContentId = content, completionPeriod = "P30D" }, ct)).Expect(201, "POST /assignments");
            data.Operations.Add(created.OperationHref()["/operations/".Length..]);
            await client.WaitForOperation(auth, created.OperationHref(), TimeSpan.FromMinutes(1), ct);
            var id = created.Json["assignment"]!["id"]!.GetValue<string>();
            data.Assignments.Add(id);
            foreach (var e in await client.Enrolments(auth, Guid.Parse(id), ct))
                data.Enrolments.Add((id, e["id"]!.GetValue<string>(), e["userId"]!.GetValue<string>()));
        }

        var completedAt = Api.Now(TimeSpan.FromMinutes(-1));
        var completion = ($"{tag}-{letter}-completion-1", shared[0], $"{tag}-content", completedAt, 87.0);
        (await client.Post("/completions", auth, new { completionId = completion.Item1, userId = completion.Item2, contentId = completion.Item3, completedAt, answer = completion.Item5 }, ct))
            .Expect(200, "POST /completions");
        data.Completions.Add(completion);

        var watched = data.Enrolments.First(e => e.User == own[0]);
        for (var i = 0; i < 3; i++)
            (await client.Post($"/assignments/{watched.Assignment}/enrolments/{watched.Enrolment}/reminders", auth, null, ct)).Expect(200, "reminder");
        var archived = data.Enrolments.First(e => e.User == shared[2]);
        (await client.Post($"/assignments/{archived.Assignment}/enrolments/{archived.Enrolment}/archive", auth, null, ct)).Expect(200, "archive");

        var page = (await client.Get($"/assignments/{data.Assignments[0]}/enrolments?limit=1", auth, ct)).Expect(200, "first page").Json;
        data.Cursors.Add(page["nextCursor"]!.GetValue<string>());

        if (context.IssueMimecastKey is { } issue)
        {
            data.Key = await issue(tenant.TenantId, ct);
            var reply = await client.Exchange(MimecastRequest(data.Key, """{"data":[],"meta":{"pagination":{"pageSize":1}}}"""), ct);
            if (reply.Status != 200) throw new InvalidOperationException($"The Mimecast page of {tenant.TenantId}: {reply}");
            if (JsonNode.Parse(reply.Body)?["meta"]?["pagination"]?["next"]?.GetValue<string>() is { } next) data.PageTokens.Add(next);
        }
        return data;
    }

    /// <summary>Every resource of the tenant as it reads it through the API (GETs only), by URL.</summary>
    private static async Task<Dictionary<string, string>> ReadEverything(HttpClient client, TenantData data, CancellationToken ct)
    {
        var auth = data.Tenant.All;
        var urls = new List<string>();
        foreach (var assignment in data.Assignments)
            urls.AddRange([$"/assignments/{assignment}", $"/assignments/{assignment}/enrolments?limit=500"]);
        foreach (var (assignment, enrolment, _) in data.Enrolments)
            urls.AddRange([$"/assignments/{assignment}/enrolments/{enrolment}", $"/assignments/{assignment}/enrolments/{enrolment}/events"]);
        urls.AddRange(data.Users.Select(u => $"/users/{u}/enrolments?limit=500"));
        urls.AddRange(data.OwnContent.Append(data.SharedContent).Select(c => $"/content/{c}"));
        urls.AddRange(data.OwnAudiences.Append(data.SharedAudience).Select(a => $"/audiences/{a}/members"));
        urls.AddRange(data.Operations.Select(o => $"/operations/{o}"));
        var read = new Dictionary<string, string>();
        foreach (var url in urls.Distinct())
        {
            var reply = await client.Exchange(Request(HttpMethod.Get, url, auth), ct);
            read[url] = $"{reply.Status} {reply.Body}";
        }
        return read;
    }

    /// <summary>Tenant B's probes, seeded: round robin over the routes, random ids of A's and random credentials.</summary>
    private sealed class Generator(Random random, TenantData a, TenantData b)
    {
        private int _turn;
        private T Pick<T>(IReadOnlyList<T> items) => items[random.Next(items.Count)];
        private bool Chance(double p) => random.NextDouble() < p;

        public Probe Next()
        {
            Func<Probe>[] routes =
            [
                GetAssignment, ListEnrolments, GetEnrolment, GetEvents, ListOwnWithForeignCursor, ListUser, DeleteAssignment, ReminderOrArchive,
                CreateAssignment, ChangeMembers, RemoveMember, GetMembers, PutContent, GetContent, Completion, GetOperation, Mimecast,
            ];
            return routes[_turn++ % routes.Length]();
        }

        private static string B64(string s) => Convert.ToBase64String(Encoding.UTF8.GetBytes(s));

        /// <summary>
        /// B's own credentials (from B's address), or, one time in five, credentials that mix A's and B's (or change A's
        /// slightly): those must never authenticate, whatever the route.
        /// </summary>
        private (string Name, AuthenticationHeaderValue Header, bool Valid) Credentials()
        {
            if (!Chance(0.2))
                return random.Next(10) switch
                {
                    0 => ("B read", b.Tenant.Basic(b.Tenant.ReadSecret), true),
                    1 => ("B write", b.Tenant.Basic(b.Tenant.WriteSecret), true),
                    _ => ("B all", b.Tenant.All, true),
                };
            return random.Next(6) switch
            {
                0 => ("A id + B secret", new AuthenticationHeaderValue("Basic", B64($"{a.Tenant.TenantId}:{b.Tenant.AllSecret}")), false),
                1 => ("B id + A secret", new AuthenticationHeaderValue("Basic", B64($"{b.Tenant.TenantId}:{a.Tenant.AllSecret}")), false),
                2 => ("A id upper-cased + A secret", new AuthenticationHeaderValue("Basic", B64($"{a.Tenant.TenantId.ToUpperInvariant()}:{a.Tenant.AllSecret}")), false),
                3 => ("A id + A secret + 1 char", new AuthenticationHeaderValue("Basic", B64($"{a.Tenant.TenantId}:{a.Tenant.AllSecret}x")), false),
                4 => ("A id + B read secret", new AuthenticationHeaderValue("Basic", B64($"{a.Tenant.TenantId}:{b.Tenant.ReadSecret}")), false),
                _ => ("A id with a trailing space + A secret", new AuthenticationHeaderValue("Basic", B64($"{a.Tenant.TenantId} :{a.Tenant.AllSecret}")), false),
            };
        }

        /// <summary>A request as B (or with mixed credentials). <paramref name="foreign"/>: it names something only A has.</summary>
        private Probe Basic(string route, HttpMethod method, string url, object? body, bool foreign)
        {
            var (name, header, valid) = Credentials();
            var json = body is null ? null : body as string ?? JsonSerializer.Serialize(body, Api.JsonOptions);
            return new Probe(route, name, () => Request(method, url, header, json), foreign || !valid, valid, url + " " + json);
        }

        private (string Assignment, string Enrolment, string User) AEnrolment() => Pick(a.Enrolments);
        private (string Assignment, string Enrolment, string User) BEnrolment() => Pick(b.Enrolments);

        private Probe GetAssignment() => Basic("GET /assignments/{id}", HttpMethod.Get, $"/assignments/{Pick(a.Assignments)}", null, true);

        private Probe ListEnrolments()
        {
            var query = Pick(new[] { "", "?status=open", $"?userId={Pick(a.Users)}", "?limit=1", $"?cursor={Uri.EscapeDataString(Pick(a.Cursors))}" });
            return Basic("GET /assignments/{id}/enrolments", HttpMethod.Get, $"/assignments/{Pick(a.Assignments)}/enrolments{query}", null, true);
        }

        private Probe GetEnrolment()
        {
            var e = AEnrolment();
            // A's enrolment under A's assignment, under one of B's assignments, and B's enrolment under A's assignment.
            var url = random.Next(3) switch
            {
                0 => $"/assignments/{e.Assignment}/enrolments/{e.Enrolment}",
                1 => $"/assignments/{BEnrolment().Assignment}/enrolments/{e.Enrolment}",
                _ => $"/assignments/{e.Assignment}/enrolments/{BEnrolment().Enrolment}",
            };
            if (Chance(0.3)) url += "?asOf=" + Uri.EscapeDataString(Api.Now());
            return Basic("GET /assignments/{id}/enrolments/{id}", HttpMethod.Get, url, null, true);
        }

        private Probe GetEvents()
        {
            var e = AEnrolment();
            var assignment = Chance(0.5) ? e.Assignment : BEnrolment().Assignment;
            return Basic("GET /assignments/{id}/enrolments/{id}/events", HttpMethod.Get, $"/assignments/{assignment}/enrolments/{e.Enrolment}/events", null, true);
        }

        /// <summary>B's own list with a cursor produced for A: B's data (or a 422), never A's.</summary>
        private Probe ListOwnWithForeignCursor() =>
            Basic("GET /assignments/{B's id}/enrolments?cursor={A's}", HttpMethod.Get,
                $"/assignments/{Pick(b.Assignments)}/enrolments?limit=2&cursor={Uri.EscapeDataString(Pick(a.Cursors))}", null, false);

        private Probe ListUser()
        {
            var query = Chance(0.5) ? $"?limit=1&cursor={Uri.EscapeDataString(Pick(a.Cursors))}" : "";
            return Basic("GET /users/{id}/enrolments", HttpMethod.Get, $"/users/{Pick(a.Users)}/enrolments{query}", null, false);
        }

        private Probe DeleteAssignment() => Basic("DELETE /assignments/{id}", HttpMethod.Delete, $"/assignments/{Pick(a.Assignments)}", null, true);

        private Probe ReminderOrArchive()
        {
            var e = AEnrolment();
            var action = Chance(0.5) ? "reminders" : "archive";
            var assignment = Chance(0.7) ? e.Assignment : BEnrolment().Assignment;
            return Basic($"POST /assignments/{{id}}/enrolments/{{id}}/{action}", HttpMethod.Post, $"/assignments/{assignment}/enrolments/{e.Enrolment}/{action}", null, true);
        }

        /// <summary>B assigns A's own content to A's own audience id: a new assignment of B's, over B's (empty) audience of that id.</summary>
        private Probe CreateAssignment() =>
            Basic("POST /assignments", HttpMethod.Post, "/assignments", new { audienceId = Pick(a.OwnAudiences), primaryContentId = Pick(a.OwnContent), completionPeriod = "P30D" }, false);

        /// <summary>B's own audience of A's audience's id, with users of B's own (never A's, so that removing A's users stays a 404).</summary>
        private Probe ChangeMembers()
        {
            var method = Chance(0.5) ? HttpMethod.Put : HttpMethod.Post;
            var audience = Chance(0.5) ? Pick(a.OwnAudiences) : a.SharedAudience;
            return Basic($"{method} /audiences/{{id}}/members", method, $"/audiences/{audience}/members", new { userIds = new[] { $"b-probe-{random.Next(3)}" } }, false);
        }

        private Probe RemoveMember() =>
            Basic("DELETE /audiences/{id}/members/{id}", HttpMethod.Delete, $"/audiences/{Pick(a.OwnAudiences)}/members/{Pick(a.OwnUsers)}", null, true);

        private Probe GetMembers() =>
            Basic("GET /audiences/{id}/members", HttpMethod.Get, $"/audiences/{(Chance(0.5) ? Pick(a.OwnAudiences) : a.SharedAudience)}/members", null, false);

        private Probe PutContent() =>
            Basic("PUT /content/{id}", HttpMethod.Put, $"/content/{Pick(a.OwnContent)}", new { title = "B's own title" }, false);

        private Probe GetContent() =>
            Basic("GET /content/{id}", HttpMethod.Get, $"/content/{(Chance(0.5) ? Pick(a.OwnContent) : a.SharedContent)}", null, false);

        /// <summary>A's completion, id and payload as A sent them, sent by B: B's own completion (first time) or its repeat, never A's record.</summary>
        private Probe Completion()
        {
            var c = Pick(a.Completions);
            return Basic("POST /completions", HttpMethod.Post, "/completions", new { completionId = c.Id, userId = c.User, contentId = c.Content, completedAt = c.CompletedAt, answer = c.Answer }, false);
        }

        private Probe GetOperation() => Basic("GET /operations/{id}", HttpMethod.Get, $"/operations/{Pick(a.Operations)}", null, true);

        private Probe Mimecast()
        {
            var users = Enumerable.Range(0, random.Next(1, 4)).Select(_ => Pick(a.Users)).ToArray();
            var body = random.Next(3) switch
            {
                0 => JsonSerializer.Serialize(new { data = users.Select(u => new { userId = u }) }),
                1 => "{\"data\":[]}",
                _ => a.PageTokens.Count > 0 ? JsonSerializer.Serialize(new { data = Array.Empty<object>(), meta = new { pagination = new { pageSize = 2, pageToken = Pick(a.PageTokens) } } }) : "{\"data\":[]}",
            };
            const string route = "POST " + MimecastRoute;
            if (a.Key is null || b.Key is null)
                return Basic(route, HttpMethod.Post, MimecastRoute, body, true); // Basic is never accepted on this route
            var (ka, kb) = (a.Key, b.Key);
            return random.Next(6) switch
            {
                // B's own key: B's users of those ids (or "not found"), never A's.
                0 or 1 or 2 => new Probe(route, "B's Mimecast key", () => MimecastRequest(kb, body), false, true, body),
                3 => new Probe(route, "A's access key signed with B's secret key", () => MimecastRequest(ka with { SecretKey = kb.SecretKey, AppKey = kb.AppKey }, body), true, false, body),
                4 => new Probe(route, "B's key with A's app id", () => MimecastRequest(kb with { AppId = ka.AppId }, body), true, false, body),
                _ => new Probe(route, "A's tenant Basic credentials", () => Request(HttpMethod.Post, MimecastRoute, a.Tenant.All, body), true, false, body),
            };
        }
    }
}
