using System.Globalization;
using System.Text.Json.Nodes;

namespace Enrolment.Api.Tests;

/// <summary>The routes of PRODUCT.md's route table (the Mimecast one aside), their answers and their error statuses.</summary>
public sealed class EnrolmentApiTests(AppFixture fixture) : ScenarioTest(fixture)
{
    private static DateTimeOffset Instant(JsonNode? node, string property)
    {
        var text = node.Str(property);
        Assert.Matches(Scenarios.InstantFormat, text);
        return DateTimeOffset.ParseExact(text, "yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal);
    }

    private static string Format(DateTimeOffset instant) =>
        instant.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);

    private static JsonArray EventLog(JsonNode enrolment) => enrolment["eventLog"]!.AsArray();

    private static void AssertLogEntry(JsonNode? entry, string eventType, string previousStatus, string newStatus, string? completionId = null)
    {
        Assert.NotNull(entry);
        Assert.Equal(eventType, entry.Str("eventType"));
        Assert.Equal(previousStatus, entry.Str("previousStatus"));
        Assert.Equal(newStatus, entry.Str("newStatus"));
        Assert.Equal(completionId, entry["completionId"]?.GetValue<string>());
    }

    // ---------------------------------------------------------------- the walkthrough

    [Fact]
    public async Task Creating_an_assignment_answers_201_with_Location_and_enrols_every_audience_member()
    {
        await PutContent("c1", "Phishing basics");
        var members = await SetMembers("a1", ["u1", "u2", "u3"]);
        Assert.Equal(3, members["users"]!.GetValue<int>());

        var created = (await Post("/assignments", new { audienceId = "a1", primaryContentId = "c1", completionPeriod = "P30D" })).AssertStatus(201);
        var assignment = created.Json["assignment"]!;
        var id = assignment.Str("id");
        Assert.Equal($"/assignments/{id}", created.Headers.Location.ToString());
        Assert.Equal("a1", assignment.Str("audienceId"));
        Assert.Equal("c1", assignment.Str("primaryContentId"));
        Assert.Equal("P30D", assignment.Str("completionPeriod"));
        Instant(assignment, "availableDate");
        await WaitForOperation(created);

        var read = (await Get($"/assignments/{id}")).AssertStatus(200).Json;
        Assert.Equal(id, read.Str("id"));
        Assert.Equal("active", read.Str("status"));
        Assert.Equal(assignment.Str("availableDate"), read.Str("availableDate"));

        var enrolments = await ListAll($"/assignments/{id}/enrolments");
        Assert.Equal(["u1", "u2", "u3"], enrolments.Select(e => e.Str("userId")).Order().ToArray());
        Assert.All(enrolments, e => Assert.Equal("open", e.Str("status")));
        Assert.All(enrolments, e => Assert.Equal(id, e.Str("assignmentId")));
        Assert.Equal(3, enrolments.Select(e => e.Str("id")).Distinct().Count());
    }

    [Fact]
    public async Task An_enrolment_has_the_contract_shape_with_lowercase_status_and_millisecond_utc_instants()
    {
        var assignmentId = await OpenAssignmentFor("u1", "u2", "u3");
        var enrolmentId = await EnrolmentIdFor(assignmentId, "u2");
        var assignment = (await Get($"/assignments/{assignmentId}")).AssertStatus(200).Json;

        var response = (await Get($"/assignments/{assignmentId}/enrolments/{enrolmentId}")).AssertStatus(200);
        Assert.StartsWith("application/json", response.ContentType);
        var e = response.Json.AsObject();

        Assert.Equal(
            new[] { "assignmentId", "audienceId", "availableDate", "dueDate", "eventLog", "id", "lastCompletedAt", "primaryContentId", "status", "updatedAt", "userId" },
            e.Select(p => p.Key).Order(StringComparer.Ordinal).ToArray());
        Assert.Equal(enrolmentId, e.Str("id"));
        Assert.Equal("u2", e.Str("userId"));
        Assert.Equal(assignmentId, e.Str("assignmentId"));
        Assert.Equal("a1", e.Str("audienceId"));
        Assert.Equal("c1", e.Str("primaryContentId"));
        Assert.Equal("open", e.Str("status"));
        Assert.Equal(assignment.Str("availableDate"), e.Str("availableDate"));
        Assert.Equal(TimeSpan.FromDays(30), Instant(e, "dueDate") - Instant(e, "availableDate"));
        Assert.True(e.ContainsKey("lastCompletedAt") && e["lastCompletedAt"] is null, "lastCompletedAt is null before any completion");
        Instant(e, "updatedAt");

        var entry = Assert.Single(EventLog(e))!.AsObject();
        Assert.Equal(
            new[] { "completionId", "createdAt", "eventType", "newStatus", "nextStatus", "previousStatus", "type", "updatedAt" },
            entry.Select(p => p.Key).Order(StringComparer.Ordinal).ToArray());
        AssertLogEntry(entry, "enrolment.assigned", "unassigned", "open");
        Assert.True(entry.ContainsKey("completionId") && entry["completionId"] is null);
        Instant(entry, "createdAt");
        Instant(entry, "updatedAt");
        Assert.Equal(entry.Str("createdAt"), e.Str("updatedAt"));
        // Thrive's names and the deprecated aliases carry the same values.
        Assert.Equal(entry.Str("type"), entry.Str("eventType"));
        Assert.Equal(entry.Str("nextStatus"), entry.Str("newStatus"));

        // The list shows each enrolment exactly as the read by id does: no internal property in either.
        var listed = (await Get($"/assignments/{assignmentId}/enrolments?userId=u2")).AssertStatus(200).Json["items"]!.AsArray().Single()!;
        Assert.Equal(e.ToJsonString(), listed.ToJsonString());
    }

    [Fact]
    public async Task A_completion_completes_the_open_enrolment_and_logs_its_completionId()
    {
        var assignmentId = await OpenAssignmentFor("u1", "u2");
        var enrolmentId = await EnrolmentIdFor(assignmentId, "u1");
        var completedAt = Now(TimeSpan.FromSeconds(-5));

        var response = (await Complete("cmp-1", "u1", "c1", completedAt, answer: 0.75)).AssertStatus(200);
        var completed = Assert.Single(response.Json["completed"]!.AsArray())!;
        Assert.Equal(enrolmentId, completed.Str("enrolmentId"));
        Assert.Equal(assignmentId, completed.Str("assignmentId"));

        var e = await GetEnrolment(assignmentId, enrolmentId);
        Assert.Equal("complete", e.Str("status"));
        Assert.Equal(completedAt, e.Str("lastCompletedAt"));
        Assert.Equal(2, EventLog(e).Count);
        AssertLogEntry(EventLog(e)[1], "enrolment.completed", "open", "complete", "cmp-1");
        Assert.Equal(EventLog(e)[1].Str("createdAt"), e.Str("updatedAt"));

        // The other user's enrolment is untouched.
        Assert.Equal("open", (await FindEnrolment(assignmentId, "u2")).Str("status"));
    }

    [Fact]
    public async Task A_completion_completes_every_open_enrolment_of_the_user_for_that_content()
    {
        await PutContent("c1");
        await SetMembers("a1", ["u1", "u2"]);
        var first = await CreateAssignment("a1", "c1");
        var second = await CreateAssignment("a1", "c1", "P10D");

        var response = (await Complete("cmp-1", "u1", "c1")).AssertStatus(200);

        Assert.Equal(new[] { first, second }.Order().ToArray(),
            response.Json["completed"]!.AsArray().Select(c => c.Str("assignmentId")).Order().ToArray());
        Assert.All(await ListAll("/users/u1/enrolments"), e => Assert.Equal("complete", e.Str("status")));
        Assert.All(await ListAll("/users/u2/enrolments"), e => Assert.Equal("open", e.Str("status")));
    }

    [Fact]
    public async Task A_completion_time_with_an_offset_is_shown_in_utc_with_milliseconds()
    {
        var assignmentId = await OpenAssignmentFor("u1");
        var local = DateTimeOffset.UtcNow.AddMinutes(-10).ToOffset(TimeSpan.FromHours(2));
        var withOffset = local.ToString("yyyy-MM-dd'T'HH:mm:ss.fffzzz", CultureInfo.InvariantCulture);

        (await Complete("cmp-1", "u1", "c1", withOffset)).AssertStatus(200);

        Assert.Equal(Format(local), (await FindEnrolment(assignmentId, "u1")).Str("lastCompletedAt"));
    }

    [Fact]
    public async Task Repeating_a_completion_answers_the_same_and_changes_nothing()
    {
        var assignmentId = await OpenAssignmentFor("u1");
        var enrolmentId = await EnrolmentIdFor(assignmentId, "u1");
        var completedAt = Now(TimeSpan.FromSeconds(-5));

        var first = (await Complete("cmp-1", "u1", "c1", completedAt, answer: 3)).AssertStatus(200);
        var before = await GetEnrolment(assignmentId, enrolmentId);
        var second = (await Complete("cmp-1", "u1", "c1", completedAt, answer: 3)).AssertStatus(200);
        var after = await GetEnrolment(assignmentId, enrolmentId);

        Assert.True(JsonNode.DeepEquals(first.Json, second.Json), $"Same completion, same answer:\n{first.Body}\n{second.Body}");
        Assert.True(JsonNode.DeepEquals(before, after), $"A repeated completion must change nothing:\n{before.ToJsonString()}\n{after.ToJsonString()}");
        Assert.Equal(2, EventLog(after).Count);
        Assert.Equal(2, (await Events(assignmentId, enrolmentId)).Count);
    }

    [Fact]
    public async Task Reusing_a_completionId_for_a_different_completion_is_409()
    {
        var assignmentId = await OpenAssignmentFor("u1", "u2");
        var completedAt = Now(TimeSpan.FromSeconds(-5));
        (await Complete("cmp-1", "u1", "c1", completedAt, answer: 3)).AssertStatus(200);

        (await Complete("cmp-1", "u1", "c1", completedAt, answer: 4)).AssertProblem(409);
        (await Complete("cmp-1", "u2", "c1", completedAt, answer: 3)).AssertProblem(409);
        (await Complete("cmp-1", "u1", "c1", Now(TimeSpan.FromSeconds(-1)), answer: 3)).AssertProblem(409);

        // The conflicting attempt for u2 completed nothing.
        Assert.Equal("open", (await FindEnrolment(assignmentId, "u2")).Str("status"));
    }

    [Fact]
    public async Task Archiving_an_enrolment_archives_it_once_and_archiving_again_changes_nothing()
    {
        var assignmentId = await OpenAssignmentFor("u1");
        var enrolmentId = await EnrolmentIdFor(assignmentId, "u1");
        var url = $"/assignments/{assignmentId}/enrolments/{enrolmentId}/archive";

        var archived = (await Post(url)).AssertStatus(200).Json;
        Assert.Equal("archived", archived.Str("status"));
        Assert.Equal(2, EventLog(archived).Count);
        AssertLogEntry(EventLog(archived)[1], "enrolment.archived", "open", "archived");

        var again = (await Post(url)).AssertStatus(200).Json;
        Assert.Equal("archived", again.Str("status"));
        Assert.Equal(2, EventLog(again).Count);

        var stored = await GetEnrolment(assignmentId, enrolmentId);
        Assert.Equal("archived", stored.Str("status"));
        Assert.Equal(2, EventLog(stored).Count);
        var events = await Events(assignmentId, enrolmentId);
        Assert.Equal(2, events.Count);
        Assert.Equal("explicit", events[1]!["data"].Str("reason"));
    }

    [Fact]
    public async Task Removing_a_member_archives_their_enrolment_and_the_stream_records_why()
    {
        var assignmentId = await OpenAssignmentFor("u1", "u2", "u3");
        var enrolmentId = await EnrolmentIdFor(assignmentId, "u2");

        var removal = await RemoveMember("a1", "u2");
        Assert.Equal(1, removal["enrolmentsChanged"]!.GetValue<int>());

        var e = await GetEnrolment(assignmentId, enrolmentId);
        Assert.Equal("archived", e.Str("status"));
        AssertLogEntry(EventLog(e)[^1], "enrolment.archived", "open", "archived");
        var events = await Events(assignmentId, enrolmentId);
        Assert.Equal("enrolment.archived", events[^1].Str("eventType"));
        Assert.Equal("leftAudience", events[^1]!["data"].Str("reason"));

        Assert.Equal(["u1", "u3"], (await Get("/audiences/a1/members")).AssertStatus(200).Json["userIds"]!.AsArray().Select(u => u!.GetValue<string>()).ToArray());
        Assert.Equal("open", (await FindEnrolment(assignmentId, "u1")).Str("status"));
        Assert.Equal("open", (await FindEnrolment(assignmentId, "u3")).Str("status"));
    }

    [Fact]
    public async Task A_member_who_rejoins_is_reinstated_in_the_same_enrolment_with_its_history_kept()
    {
        var assignmentId = await OpenAssignmentFor("u1", "u2");
        var enrolmentId = await EnrolmentIdFor(assignmentId, "u1");
        (await Complete("cmp-1", "u1", "c1")).AssertStatus(200);
        await RemoveMember("a1", "u1");

        await AddMembers("a1", ["u1"]);

        var all = await ListAll($"/assignments/{assignmentId}/enrolments?userId=u1");
        Assert.Equal(enrolmentId, Assert.Single(all).Str("id"));
        var e = await GetEnrolment(assignmentId, enrolmentId);
        Assert.Equal("open", e.Str("status"));
        var log = EventLog(e);
        Assert.Equal(4, log.Count);
        AssertLogEntry(log[0], "enrolment.assigned", "unassigned", "open");
        AssertLogEntry(log[1], "enrolment.completed", "open", "complete", "cmp-1");
        AssertLogEntry(log[2], "enrolment.archived", "complete", "archived");
        AssertLogEntry(log[3], "enrolment.reinstated", "archived", "open");
        Assert.Equal(4, (await Events(assignmentId, enrolmentId)).Count);
    }

    [Fact]
    public async Task Replacing_the_member_list_archives_leavers_and_enrols_joiners()
    {
        var assignmentId = await OpenAssignmentFor("u1", "u2");

        var change = (await Put("/audiences/a1/members", new { userIds = new[] { "u2", "u3" } })).AssertStatus(202);
        Assert.Equal(1, change.Json["joined"]!.GetValue<int>());
        Assert.Equal(1, change.Json["left"]!.GetValue<int>());
        await WaitForOperation(change);

        var byUser = (await ListAll($"/assignments/{assignmentId}/enrolments")).ToDictionary(e => e.Str("userId"), e => e.Str("status"));
        Assert.Equal(new Dictionary<string, string> { ["u1"] = "archived", ["u2"] = "open", ["u3"] = "open" }, byUser);
    }

    [Fact]
    public async Task Events_returns_the_raw_stream_with_sequence_version_eventType_timestamp_and_data()
    {
        var assignmentId = await OpenAssignmentFor("u1");
        var enrolmentId = await EnrolmentIdFor(assignmentId, "u1");
        var completedAt = Now(TimeSpan.FromSeconds(-5));
        (await Complete("cmp-1", "u1", "c1", completedAt, answer: 1)).AssertStatus(200);
        (await Post($"/assignments/{assignmentId}/enrolments/{enrolmentId}/reminders")).AssertStatus(200);

        var events = await Events(assignmentId, enrolmentId);

        Assert.Equal(["enrolment.assigned", "enrolment.completed", "enrolment.reminded"], events.Select(e => e.Str("eventType")).ToArray());
        Assert.Equal([1L, 2L, 3L], events.Select(e => e!["version"]!.GetValue<long>()).ToArray());
        var sequences = events.Select(e => e!["sequence"]!.GetValue<long>()).ToArray();
        Assert.True(sequences.Zip(sequences.Skip(1)).All(p => p.First < p.Second), $"sequence must increase: {string.Join(",", sequences)}");
        foreach (var e in events)
        {
            Assert.Equal(new[] { "actor", "correlationId", "data", "eventType", "hash", "previousHash", "sequence", "timestamp", "version" }, e!.AsObject().Select(p => p.Key).Order(StringComparer.Ordinal).ToArray());
            Instant(e, "timestamp");
            Assert.Equal(enrolmentId, e["data"].Str("enrolmentId"));
        }
        Assert.Equal("u1", events[0]!["data"].Str("userId"));
        Assert.Equal(assignmentId, events[0]!["data"].Str("assignmentId"));
        Assert.Equal("cmp-1", events[1]!["data"].Str("completionId"));
        Assert.Equal(completedAt, events[1]!["data"].Str("completedAt"));
        Assert.Equal(1, events[1]!["data"]!["answer"]!.GetValue<double>());
    }

    [Fact]
    public async Task AsOf_an_instant_before_the_completion_shows_the_enrolment_open_without_the_completion()
    {
        var assignmentId = await OpenAssignmentFor("u1");
        var enrolmentId = await EnrolmentIdFor(assignmentId, "u1");
        (await Complete("cmp-1", "u1", "c1")).AssertStatus(200);
        var now = await GetEnrolment(assignmentId, enrolmentId);
        var completedEntry = EventLog(now)[1]!;
        Assert.Equal("enrolment.completed", completedEntry.Str("eventType"));

        var asOf = Format(Instant(completedEntry, "createdAt") - TimeSpan.FromMilliseconds(1));
        var past = (await Get($"/assignments/{assignmentId}/enrolments/{enrolmentId}?asOf={Uri.EscapeDataString(asOf)}")).AssertStatus(200).Json;

        Assert.Equal("open", past.Str("status"));
        Assert.Null(past["lastCompletedAt"]);
        var log = Assert.Single(EventLog(past));
        AssertLogEntry(log, "enrolment.assigned", "unassigned", "open");
        Assert.DoesNotContain(EventLog(past), l => l!["completionId"] is not null);

        // asOf now is the current state.
        var current = (await Get($"/assignments/{assignmentId}/enrolments/{enrolmentId}?asOf={Uri.EscapeDataString(Now(TimeSpan.FromSeconds(1)))}")).AssertStatus(200).Json;
        Assert.Equal("complete", current.Str("status"));
        Assert.Equal(2, EventLog(current).Count);
    }

    [Fact]
    public async Task AsOf_an_instant_before_the_enrolment_existed_is_404_and_a_malformed_asOf_is_422()
    {
        var assignmentId = await OpenAssignmentFor("u1");
        var e = await FindEnrolment(assignmentId, "u1");
        var created = Instant(EventLog(e)[0], "createdAt");
        var url = $"/assignments/{assignmentId}/enrolments/{e.Str("id")}";

        (await Get($"{url}?asOf={Uri.EscapeDataString(Format(created - TimeSpan.FromSeconds(1)))}")).AssertProblem(404);
        (await Get($"{url}?asOf=yesterday")).AssertProblem(422);
        (await Get($"{url}?asOf=2023-02-30T00:00:00Z")).AssertProblem(422);
    }

    // ---------------------------------------------------------------- scheduled

    [Fact]
    public async Task An_assignment_available_in_the_future_creates_scheduled_enrolments_that_a_completion_does_not_complete()
    {
        await PutContent("c1");
        await SetMembers("a1", ["u1", "u2"]);
        var availableDate = Now(TimeSpan.FromDays(2));
        var assignmentId = await CreateAssignment(new { audienceId = "a1", primaryContentId = "c1", availableDate, completionPeriod = "P30D" });

        var enrolments = await ListAll($"/assignments/{assignmentId}/enrolments");
        Assert.Equal(2, enrolments.Count);
        Assert.All(enrolments, e =>
        {
            Assert.Equal("scheduled", e.Str("status"));
            Assert.Equal(availableDate, e.Str("availableDate"));
            AssertLogEntry(Assert.Single(EventLog(e)), "enrolment.assigned", "unassigned", "scheduled");
        });

        var completion = (await Complete("cmp-1", "u1", "c1")).AssertStatus(200);
        Assert.Empty(completion.Json["completed"]!.AsArray());

        var e1 = await FindEnrolment(assignmentId, "u1");
        Assert.Equal("scheduled", e1.Str("status"));
        Assert.Null(e1["lastCompletedAt"]);
        Assert.Single(EventLog(e1));
    }

    // ---------------------------------------------------------------- reminders

    [Fact]
    public async Task A_reminder_adds_an_eventLog_entry_and_changes_no_status()
    {
        var assignmentId = await OpenAssignmentFor("u1", "u2");
        var open = await EnrolmentIdFor(assignmentId, "u1");
        var complete = await EnrolmentIdFor(assignmentId, "u2");
        (await Complete("cmp-2", "u2", "c1")).AssertStatus(200);

        var reminded = (await Post($"/assignments/{assignmentId}/enrolments/{open}/reminders")).AssertStatus(200).Json;
        Assert.Equal("open", reminded.Str("status"));
        AssertLogEntry(EventLog(reminded)[^1], "enrolment.reminded", "open", "open");

        var stored = await GetEnrolment(assignmentId, open);
        Assert.Equal("open", stored.Str("status"));
        Assert.Equal(2, EventLog(stored).Count);
        AssertLogEntry(EventLog(stored)[1], "enrolment.reminded", "open", "open");

        (await Post($"/assignments/{assignmentId}/enrolments/{complete}/reminders")).AssertStatus(200);
        var completed = await GetEnrolment(assignmentId, complete);
        Assert.Equal("complete", completed.Str("status"));
        AssertLogEntry(EventLog(completed)[^1], "enrolment.reminded", "complete", "complete");
    }

    [Fact]
    public async Task A_reminder_on_an_archived_enrolment_is_409_and_records_nothing()
    {
        var assignmentId = await OpenAssignmentFor("u1");
        var enrolmentId = await EnrolmentIdFor(assignmentId, "u1");
        (await Post($"/assignments/{assignmentId}/enrolments/{enrolmentId}/archive")).AssertStatus(200);

        (await Post($"/assignments/{assignmentId}/enrolments/{enrolmentId}/reminders")).AssertProblem(409);

        Assert.Equal(2, EventLog(await GetEnrolment(assignmentId, enrolmentId)).Count);
    }

    // ---------------------------------------------------------------- lists

    [Fact]
    public async Task Lists_filter_by_status_and_by_userId()
    {
        var assignmentId = await OpenAssignmentFor("u1", "u2", "u3", "u4", "u5");
        (await Complete("cmp-1", "u1", "c1")).AssertStatus(200);
        (await Complete("cmp-2", "u2", "c1")).AssertStatus(200);
        (await Post($"/assignments/{assignmentId}/enrolments/{await EnrolmentIdFor(assignmentId, "u3")}/archive")).AssertStatus(200);

        string[] Users(IEnumerable<JsonNode> items) => items.Select(i => i.Str("userId")).Order().ToArray();
        Assert.Equal(["u1", "u2"], Users(await ListAll($"/assignments/{assignmentId}/enrolments?status=complete")));
        Assert.Equal(["u3"], Users(await ListAll($"/assignments/{assignmentId}/enrolments?status=archived")));
        Assert.Equal(["u4", "u5"], Users(await ListAll($"/assignments/{assignmentId}/enrolments?status=open")));
        Assert.Empty(await ListAll($"/assignments/{assignmentId}/enrolments?status=overdue"));
        Assert.Equal(["u4"], Users(await ListAll($"/assignments/{assignmentId}/enrolments?userId=u4")));
        Assert.Equal(["u1"], Users(await ListAll($"/assignments/{assignmentId}/enrolments?userId=u1&status=complete")));
        Assert.Empty(await ListAll($"/assignments/{assignmentId}/enrolments?userId=u1&status=open"));
        Assert.Empty(await ListAll($"/assignments/{assignmentId}/enrolments?userId=nobody"));
        Assert.Equal(["u1", "u2"], Users((await ListAll("/users/u1/enrolments?status=complete")).Concat(await ListAll("/users/u2/enrolments?status=complete"))));
    }

    [Fact]
    public async Task Cursor_paging_returns_every_enrolment_exactly_once_and_ends_with_a_null_nextCursor()
    {
        var users = Enumerable.Range(1, 7).Select(i => $"u{i}").ToArray();
        var assignmentId = await OpenAssignmentFor(users);

        var pages = new List<JsonArray>();
        string? cursor = null;
        do
        {
            var url = $"/assignments/{assignmentId}/enrolments?limit=3" + (cursor is null ? "" : $"&cursor={Uri.EscapeDataString(cursor)}");
            var page = (await Get(url)).AssertStatus(200).Json;
            pages.Add(page["items"]!.AsArray());
            cursor = page["nextCursor"]?.GetValue<string>();
            Assert.True(pages.Count <= 3, "7 items in pages of 3 take 3 pages");
        } while (cursor is not null);

        Assert.Equal([3, 3, 1], pages.Select(p => p.Count).ToArray());
        var ids = pages.SelectMany(p => p).Select(i => i.Str("id")).ToArray();
        Assert.Equal(ids.Length, ids.Distinct().Count());
        Assert.Equal(users, pages.SelectMany(p => p).Select(i => i.Str("userId")).Order().ToArray());

        // Exactly a multiple of the limit: the last full page may not promise a next page that is empty.
        var seven = (await Get($"/assignments/{assignmentId}/enrolments?limit=7")).AssertStatus(200).Json;
        Assert.Equal(7, seven["items"]!.AsArray().Count);
        Assert.Null(seven["nextCursor"]);
    }

    public static readonly TheoryData<string, string> InvalidListQueries = new()
    {
        { "limit=0", "limit below 1" },
        { "limit=501", "limit above 500" },
        { "limit=-1", "negative limit" },
        { "cursor=garbage", "cursor not issued by the service" },
        { "cursor=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "cursor of the wrong length" },
        { "status=done", "unknown status" },
        { "status=OPEN", "status not in lowercase" },
        { "status=unassigned", "unassigned is never a current status" },
    };

    [Theory]
    [MemberData(nameof(InvalidListQueries))]
    public async Task An_invalid_query_on_a_users_enrolments_is_422(string query, string because)
    {
        var response = await Get($"/users/u1/enrolments?{query}");
        Assert.True(response.Status == 422, $"{because}: {response}");
        response.AssertProblem(422);
    }

    [Fact]
    public async Task An_invalid_query_on_an_assignments_enrolments_is_422()
    {
        var assignmentId = await OpenAssignmentFor("u1");
        var failures = new List<string>();
        foreach (var row in InvalidListQueries)
        {
            var (query, because) = ((string)row[0], (string)row[1]);
            var response = await Get($"/assignments/{assignmentId}/enrolments?{query}");
            if (response.Status != 422 || response.ContentType?.StartsWith("application/problem+json", StringComparison.Ordinal) != true)
                failures.Add($"{query} ({because}): {response}");
        }
        Assert.True(failures.Count == 0, "Expected 422 problem documents:\n" + string.Join("\n", failures));
    }

    [Fact]
    public async Task A_limit_that_is_not_a_number_is_rejected_not_silently_replaced_by_the_default()
    {
        var assignmentId = await OpenAssignmentFor("u1");
        foreach (var url in new[] { "/users/u1/enrolments?limit=abc", $"/assignments/{assignmentId}/enrolments?limit=abc", "/users/u1/enrolments?limit=1.5" })
        {
            var response = await Get(url);
            Assert.True(response.Status is 400 or 422, $"{url}: {response}");
            response.AssertProblem(response.Status);
        }
    }

    [Fact]
    public async Task A_users_enrolments_list_spans_assignments_and_audiences()
    {
        await PutContent("c1");
        await PutContent("c2");
        await SetMembers("a1", ["u1", "u2"]);
        await SetMembers("a2", ["u1", "u3"]);
        var first = await CreateAssignment("a1", "c1");
        var second = await CreateAssignment("a2", "c2");

        var u1 = await ListAll("/users/u1/enrolments");
        Assert.Equal(new[] { first, second }.Order().ToArray(), u1.Select(e => e.Str("assignmentId")).Order().ToArray());
        Assert.All(u1, e => Assert.Equal("u1", e.Str("userId")));
        var pageOfOne = (await Get("/users/u1/enrolments?limit=1")).AssertStatus(200).Json;
        Assert.Single(pageOfOne["items"]!.AsArray());
        Assert.NotNull(pageOfOne["nextCursor"]);

        Assert.Equal([first], (await ListAll("/users/u2/enrolments")).Select(e => e.Str("assignmentId")).ToArray());
        Assert.Equal([second], (await ListAll("/users/u3/enrolments")).Select(e => e.Str("assignmentId")).ToArray());
        Assert.Empty(await ListAll("/users/nobody/enrolments"));

        // A completion of c2 completes u1's enrolment in the second assignment only.
        (await Complete("cmp-1", "u1", "c2")).AssertStatus(200);
        var byAssignment = (await ListAll("/users/u1/enrolments")).ToDictionary(e => e.Str("assignmentId"), e => e.Str("status"));
        Assert.Equal("open", byAssignment[first]);
        Assert.Equal("complete", byAssignment[second]);
    }

    [Fact]
    public async Task A_user_listed_twice_in_a_member_list_is_enrolled_once()
    {
        await PutContent("c1");
        var change = (await Put("/audiences/a1/members", new { userIds = new[] { "u1", "u1", "u2" } })).AssertStatus(202);
        Assert.Equal(2, change.Json["joined"]!.GetValue<int>());
        await WaitForOperation(change);
        var assignmentId = await CreateAssignment("a1", "c1");
        await AddMembers("a1", ["u1", "u2"]);

        var enrolments = await ListAll($"/assignments/{assignmentId}/enrolments");
        Assert.Equal(["u1", "u2"], enrolments.Select(e => e.Str("userId")).Order().ToArray());
        Assert.All(enrolments, e => Assert.Single(EventLog(e)));
    }

    [Fact]
    public async Task Unknown_routes_and_methods_answer_problem_documents()
    {
        (await Get("/no-such-route")).AssertProblem(404);
        (await Host.Send(HttpMethod.Delete, "/content/c1", Auth)).AssertProblem(405);
    }

    // ---------------------------------------------------------------- content and audiences

    [Fact]
    public async Task Content_is_stored_and_read_back_and_a_title_too_long_is_422()
    {
        var put = (await Put("/content/c-1.x", new { title = "Phishing basics" })).AssertStatus(200).Json;
        Assert.Equal("c-1.x", put.Str("id"));
        Assert.Equal("Phishing basics", (await Get("/content/c-1.x")).AssertStatus(200).Json.Str("title"));
        (await Put("/content/c-1.x", new { title = "Renamed" })).AssertStatus(200);
        Assert.Equal("Renamed", (await Get("/content/c-1.x")).AssertStatus(200).Json.Str("title"));

        (await Put("/content/c-1.x", new { title = new string('x', 501) })).AssertProblem(422);
        (await Get("/content/unknown")).AssertProblem(404);
    }

    [Fact]
    public async Task Removing_a_user_who_is_not_a_member_is_404()
    {
        await SetMembers("a1", ["u1"]);
        (await Delete("/audiences/a1/members/u2")).AssertProblem(404);
        (await Delete("/audiences/a2/members/u1")).AssertProblem(404);
    }

    // ---------------------------------------------------------------- 404s

    [Fact]
    public async Task An_unknown_assignment_is_404_on_every_assignment_route()
    {
        var unknown = Guid.NewGuid();
        (await Get($"/assignments/{unknown}")).AssertProblem(404);
        (await Get($"/assignments/{unknown}/enrolments")).AssertProblem(404);
        (await Delete($"/assignments/{unknown}")).AssertProblem(404);
        (await Get($"/assignments/{unknown}/enrolments/{Guid.NewGuid()}")).AssertProblem(404);
        (await Get($"/operations/{Guid.NewGuid()}")).AssertProblem(404);
    }

    [Fact]
    public async Task An_unknown_enrolment_is_404_on_every_enrolment_route()
    {
        var assignmentId = await OpenAssignmentFor("u1");
        var url = $"/assignments/{assignmentId}/enrolments/{Guid.NewGuid()}";
        (await Get(url)).AssertProblem(404);
        (await Get($"{url}?asOf={Uri.EscapeDataString(Now())}")).AssertProblem(404);
        (await Get($"{url}/events")).AssertProblem(404);
        (await Post($"{url}/reminders")).AssertProblem(404);
        (await Post($"{url}/archive")).AssertProblem(404);
    }

    [Fact]
    public async Task An_enrolment_id_of_another_assignment_is_404_and_that_enrolment_is_untouched()
    {
        await PutContent("c1");
        await SetMembers("a1", ["u1"]);
        var first = await CreateAssignment("a1", "c1");
        var second = await CreateAssignment("a1", "c1", "P10D");
        var enrolmentOfFirst = await EnrolmentIdFor(first, "u1");

        var url = $"/assignments/{second}/enrolments/{enrolmentOfFirst}";
        (await Get(url)).AssertProblem(404);
        (await Get($"{url}?asOf={Uri.EscapeDataString(Now(TimeSpan.FromSeconds(1)))}")).AssertProblem(404);
        (await Get($"{url}/events")).AssertProblem(404);
        (await Post($"{url}/reminders")).AssertProblem(404);
        (await Post($"{url}/archive")).AssertProblem(404);

        var e = await GetEnrolment(first, enrolmentOfFirst);
        Assert.Equal("open", e.Str("status"));
        Assert.Single(EventLog(e));
    }

    // ---------------------------------------------------------------- 422s

    [Fact]
    public async Task Malformed_ids_in_routes_are_422()
    {
        var assignmentId = await OpenAssignmentFor("u1");
        var enrolmentId = await EnrolmentIdFor(assignmentId, "u1");
        var tooLong = new string('u', 65);
        var requests = new (HttpMethod Method, string Url)[]
        {
            (HttpMethod.Get, "/assignments/not-a-uuid"),
            (HttpMethod.Get, "/assignments/not-a-uuid/enrolments"),
            (HttpMethod.Delete, "/assignments/not-a-uuid"),
            (HttpMethod.Get, $"/assignments/not-a-uuid/enrolments/{enrolmentId}"),
            (HttpMethod.Get, $"/assignments/{assignmentId}/enrolments/not-a-uuid"),
            (HttpMethod.Get, $"/assignments/{assignmentId}/enrolments/not-a-uuid/events"),
            (HttpMethod.Post, $"/assignments/{assignmentId}/enrolments/not-a-uuid/reminders"),
            (HttpMethod.Post, $"/assignments/{assignmentId}/enrolments/not-a-uuid/archive"),
            (HttpMethod.Get, "/users/bad%20user/enrolments"),
            (HttpMethod.Get, $"/users/{tooLong}/enrolments"),
            (HttpMethod.Get, "/users/caf%C3%A9/enrolments"),
            (HttpMethod.Delete, "/audiences/a1/members/bad%20user"),
            (HttpMethod.Delete, "/audiences/bad%20audience/members/u1"),
            (HttpMethod.Get, "/operations/not-a-uuid"),
        };
        foreach (var (method, url) in requests)
        {
            var response = await Host.Send(method, url, Auth);
            Assert.True(response.Status == 422, $"{method} {url}: {response}");
            response.AssertProblem(422);
        }
        (await Put("/content/bad%20content", new { title = "t" })).AssertProblem(422);
        (await Put("/audiences/bad%20audience/members", new { userIds = new[] { "u1" } })).AssertProblem(422);
        (await Post("/audiences/bad%20audience/members", new { userIds = new[] { "u1" } })).AssertProblem(422);
    }

    [Theory]
    [InlineData("""{"primaryContentId":"c1","completionPeriod":"P30D"}""", "audienceId missing")]
    [InlineData("""{"audienceId":"a1","completionPeriod":"P30D"}""", "primaryContentId missing")]
    [InlineData("""{"audienceId":"a 1","primaryContentId":"c1","completionPeriod":"P30D"}""", "audienceId with a space")]
    [InlineData("""{"audienceId":"a1","primaryContentId":"c1","availableDate":"2023-02-30T00:00:00Z","completionPeriod":"P30D"}""", "an impossible date")]
    [InlineData("""{"audienceId":"a1","primaryContentId":"c1","availableDate":"2023-08-23","completionPeriod":"P30D"}""", "a date without a time")]
    [InlineData("""{"audienceId":"a1","primaryContentId":"c1","dueDate":"next tuesday"}""", "a dueDate that is not an instant")]
    [InlineData("""{"audienceId":"a1","primaryContentId":"c1","completionPeriod":"30 days"}""", "a period that is not ISO-8601")]
    [InlineData("""{"audienceId":"a1","primaryContentId":"c1","completionPeriod":"P0D"}""", "an empty completion period")]
    [InlineData("""{"audienceId":"a1","primaryContentId":"c1","completionPeriod":"P-5D"}""", "a negative completion period")]
    [InlineData("""{"audienceId":"a1","primaryContentId":"c1","availableDate":"2030-01-02T00:00:00.000Z","dueDate":"2030-01-01T00:00:00.000Z"}""", "dueDate before availableDate")]
    [InlineData("""{"audienceId":"a1","primaryContentId":"c1","availableDate":"2030-01-01T00:00:00.000Z","dueDate":"2030-01-01T00:00:00.000Z"}""", "dueDate equal to availableDate")]
    [InlineData("""{"audienceId":"a1","primaryContentId":"c1","completionPeriod":"P30D","recurrence":"P7D"}""", "recurrence shorter than the completion period")]
    [InlineData("""{"audienceId":"a1","primaryContentId":"c1","recurrence":"P1Y"}""", "recurrence without a completion period or due date")]
    [InlineData("""{"audienceId":"a1","primaryContentId":"c1","completionPeriod":"P30D","dueDate":"2030-01-01T00:00:00.000Z"}""", "both completionPeriod and dueDate")]
    [InlineData("""{"audienceId":"a1","primaryContentId":"c1","completionPeriod":"P30D","timeZone":"Mars/Olympus_Mons"}""", "an unknown time zone")]
    [InlineData("""{"audienceId":"a1","primaryContentId":"c1","availableDate":"9999-12-31T00:00:00.000Z","completionPeriod":"P1Y"}""", "a due date beyond the supported range")]
    public async Task An_invalid_assignment_is_422_and_creates_nothing(string body, string because)
    {
        await SetMembers("a1", ["u1"]);

        var response = await Post("/assignments", body);

        Assert.True(response.Status == 422, $"{because}: {response}");
        response.AssertProblem(422);
        Assert.Empty(await ListAll("/users/u1/enrolments"));
    }

    [Theory]
    [InlineData("""{"userIds":["u1","bad user"]}""", "a user id with a space")]
    [InlineData("""{"userIds":["u1",""]}""", "an empty user id")]
    [InlineData("""{"userIds":["u1","a/b"]}""", "a user id with a slash")]
    [InlineData("""{"userIds":["u1","uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu"]}""", "a user id of 65 characters")]
    [InlineData("""{"userIds":null}""", "userIds null")]
    [InlineData("""{}""", "userIds missing")]
    public async Task An_invalid_member_list_is_422_and_changes_no_membership(string body, string because)
    {
        await SetMembers("a1", ["u0"]);
        foreach (var method in new[] { HttpMethod.Put, HttpMethod.Post })
        {
            var response = await Host.Send(method, "/audiences/a1/members", Auth, body);
            Assert.True(response.Status == 422, $"{method} {because}: {response}");
            response.AssertProblem(422);
        }
        Assert.Equal(["u0"], (await Get("/audiences/a1/members")).AssertStatus(200).Json["userIds"]!.AsArray().Select(u => u!.GetValue<string>()).ToArray());
    }

    [Theory]
    [InlineData("""{"userId":"u1","contentId":"c1","completedAt":"2024-01-01T00:00:00.000Z"}""", "completionId missing")]
    [InlineData("""{"completionId":"x1","contentId":"c1","completedAt":"2024-01-01T00:00:00.000Z"}""", "userId missing")]
    [InlineData("""{"completionId":"x1","userId":"u1","completedAt":"2024-01-01T00:00:00.000Z"}""", "contentId missing")]
    [InlineData("""{"completionId":"x1","userId":"u1","contentId":"c1"}""", "completedAt missing")]
    [InlineData("""{"completionId":"x 1","userId":"u1","contentId":"c1","completedAt":"2024-01-01T00:00:00.000Z"}""", "completionId with a space")]
    [InlineData("""{"completionId":"x1","userId":"u1","contentId":"c1","completedAt":"yesterday"}""", "completedAt not an instant")]
    [InlineData("""{"completionId":"x1","userId":"u1","contentId":"c1","completedAt":"2999-01-01T00:00:00.000Z"}""", "completedAt in the future")]
    public async Task An_invalid_completion_is_422_and_completes_nothing(string body, string because)
    {
        var assignmentId = await OpenAssignmentFor("u1");

        var response = await Post("/completions", body);

        Assert.True(response.Status == 422, $"{because}: {response}");
        response.AssertProblem(422);
        Assert.Equal("open", (await FindEnrolment(assignmentId, "u1")).Str("status"));
    }

    [Theory]
    [InlineData("POST", "/assignments", """{"audienceId":"a1",""", "truncated JSON")]
    [InlineData("POST", "/assignments", """{"audienceId":5,"primaryContentId":"c1"}""", "a number where a string belongs")]
    [InlineData("POST", "/assignments", "not json", "not JSON at all")]
    [InlineData("POST", "/assignments", "[]", "an array instead of an object")]
    [InlineData("POST", "/assignments", "", "an empty body")]
    [InlineData("POST", "/completions", """{"completionId":"x1","userId":"u1","contentId":"c1","completedAt":"2024-01-01T00:00:00.000Z","answer":"high"}""", "a string where a number belongs")]
    [InlineData("POST", "/completions", "{'completionId':'x1'}", "single quotes")]
    [InlineData("POST", "/completions", "", "an empty body")]
    [InlineData("POST", "/completions", "null", "JSON null")]
    [InlineData("POST", "/assignments", "null", "JSON null")]
    [InlineData("PUT", "/audiences/a1/members", "null", "JSON null")]
    [InlineData("PUT", "/content/c1", "null", "JSON null")]
    [InlineData("PUT", "/audiences/a1/members", """{"userIds":"u1"}""", "a string where an array belongs")]
    [InlineData("PUT", "/audiences/a1/members", """{"userIds":[1,2]}""", "numbers where strings belong")]
    [InlineData("PUT", "/audiences/a1/members", """{"userIds":["u1",]}""", "a trailing comma")]
    [InlineData("POST", "/audiences/a1/members", "{", "an unclosed object")]
    [InlineData("PUT", "/content/c1", """{"title":}""", "a missing value")]
    [InlineData("PUT", "/content/c1", """{"title":"t"} trailing""", "text after the JSON")]
    public async Task Malformed_json_is_400_or_422_with_a_problem_document_never_500(string method, string url, string body, string because)
    {
        var response = await Host.Send(new HttpMethod(method), url, Auth, body);

        Assert.True(response.Status is 400 or 422, $"{because}: {response}");
        response.AssertProblem(response.Status);
    }

    // ---------------------------------------------------------------- removing an assignment

    [Fact]
    public async Task Deleting_an_assignment_archives_all_its_enrolments_and_deleting_it_again_is_409()
    {
        var assignmentId = await OpenAssignmentFor("u1", "u2", "u3");
        (await Complete("cmp-1", "u1", "c1")).AssertStatus(200);

        var accepted = (await Delete($"/assignments/{assignmentId}")).AssertStatus(202);
        var operation = await WaitForOperation(accepted);
        Assert.Equal(3, operation["enrolmentsChanged"]!.GetValue<int>());

        var enrolments = await ListAll($"/assignments/{assignmentId}/enrolments");
        Assert.Equal(3, enrolments.Count);
        Assert.All(enrolments, e =>
        {
            Assert.Equal("archived", e.Str("status"));
            Assert.Equal("enrolment.archived", EventLog(e)[^1].Str("eventType"));
        });
        var events = await Events(assignmentId, enrolments[0].Str("id"));
        Assert.Equal("assignmentRemoved", events[^1]!["data"].Str("reason"));
        Assert.Equal("removed", (await Get($"/assignments/{assignmentId}")).AssertStatus(200).Json.Str("status"));

        (await Delete($"/assignments/{assignmentId}")).AssertProblem(409);

        // A removed assignment takes no new members, and a completion completes nothing in it.
        await AddMembers("a1", ["u4"]);
        Assert.Equal(3, (await ListAll($"/assignments/{assignmentId}/enrolments")).Count);
        Assert.Empty((await Complete("cmp-2", "u2", "c1")).AssertStatus(200).Json["completed"]!.AsArray());
    }

    // ---------------------------------------------------------------- concurrency

    [Fact]
    public async Task Parallel_completions_of_one_enrolment_complete_it_exactly_once_and_never_fail_with_500()
    {
        var assignmentId = await OpenAssignmentFor("u1");
        var enrolmentId = await EnrolmentIdFor(assignmentId, "u1");
        var completedAt = Now(TimeSpan.FromSeconds(-5));

        var responses = await Task.WhenAll(Enumerable.Range(0, 20).Select(i => Complete($"par-{i}", "u1", "c1", completedAt)));

        Assert.All(responses, r => Assert.True(r.Status is 200 or 409, r.ToString()));
        Assert.All(responses.Where(r => r.Status == 409), r => r.AssertProblem(409));
        var completing = responses.Where(r => r.Status == 200 && r.Json["completed"]!.AsArray().Count > 0).ToArray();
        Assert.True(completing.Length == 1, $"Exactly one completion completes the enrolment; {completing.Length} did: {string.Join("\n", responses.Select(r => r.ToString()))}");

        var events = await Events(assignmentId, enrolmentId);
        Assert.Single(events, e => e.Str("eventType") == "enrolment.completed");
        var e = await GetEnrolment(assignmentId, enrolmentId);
        Assert.Equal("complete", e.Str("status"));
        Assert.Equal(completing[0].Json.Str("completionId"), EventLog(e)[^1].Str("completionId"));
    }

    [Fact]
    public async Task Parallel_reminders_answer_200_or_409_and_every_200_is_exactly_one_reminded_event()
    {
        var assignmentId = await OpenAssignmentFor("u1");
        var enrolmentId = await EnrolmentIdFor(assignmentId, "u1");
        var url = $"/assignments/{assignmentId}/enrolments/{enrolmentId}/reminders";

        var responses = await Task.WhenAll(Enumerable.Range(0, 10).Select(_ => Post(url)));

        Assert.All(responses, r => Assert.True(r.Status is 200 or 409, r.ToString()));
        Assert.All(responses.Where(r => r.Status == 409), r => r.AssertProblem(409));
        var accepted = responses.Count(r => r.Status == 200);
        Assert.True(accepted >= 1, "At least one of the parallel reminders wins.");
        var events = await Events(assignmentId, enrolmentId);
        Assert.Equal(accepted, events.Count(e => e.Str("eventType") == "enrolment.reminded"));
        var e = await GetEnrolment(assignmentId, enrolmentId);
        Assert.Equal(1 + accepted, EventLog(e).Count);
        Assert.Equal("open", e.Str("status"));
    }

    // ---------------------------------------------------------------- fan-out in batches

    [Fact]
    public async Task A_fan_out_over_1200_users_runs_in_batches_and_enrols_every_user_once()
    {
        var users = Enumerable.Range(0, 1200).Select(i => $"user{i:D4}").ToArray();
        await PutContent("c1");
        await SetMembers("a1", users);

        var created = (await Post("/assignments", new { audienceId = "a1", primaryContentId = "c1", completionPeriod = "P30D" })).AssertStatus(201);
        var operation = await WaitForOperation(created, timeout: TimeSpan.FromSeconds(90));
        var assignmentId = created.Json["assignment"].Str("id");

        Assert.Equal(1200, operation["users"]!.GetValue<int>());
        Assert.True(operation["batches"]!.GetValue<int>() >= 3, $"1,200 users take at least 3 batches of 500: {operation.ToJsonString()}");
        Assert.Equal(operation["batches"]!.GetValue<int>(), operation["completedBatches"]!.GetValue<int>());
        Assert.Equal(1200, operation["enrolmentsChanged"]!.GetValue<int>());

        var all = await ListAll($"/assignments/{assignmentId}/enrolments", limit: 500);
        Assert.Equal(1200, all.Count);
        Assert.Equal(users, all.Select(e => e.Str("userId")).Order(StringComparer.Ordinal).ToArray());
        Assert.Equal(1200, all.Select(e => e.Str("id")).Distinct().Count());

        var firstPage = (await Get($"/assignments/{assignmentId}/enrolments")).AssertStatus(200).Json;
        Assert.Equal(100, firstPage["items"]!.AsArray().Count);
        Assert.NotNull(firstPage["nextCursor"]);
    }
}
