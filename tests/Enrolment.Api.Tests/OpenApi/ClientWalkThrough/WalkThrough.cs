// Compiled at test time (GeneratedClientTests) together with the C# client NSwag generates from the served OpenAPI
// document: the README walk-through written against that client. A type or member the document no longer describes
// fails the compilation; an answer it does not describe makes the client throw. Optional query parameters are passed by
// name, so that a filter added to a route later does not break an integrator's code (nor this test).
using System;
using System.Collections.Generic;
using System.Linq;
using System.Net.Http;
using System.Threading.Tasks;
using Generated;

namespace ClientWalkThrough;

public static class WalkThrough
{
    public static async Task<List<string>> Run(HttpClient http)
    {
        var seen = new List<string>();
        var client = new EnrolmentClient(http);

        var content = await client.PutContentAsync("security-101", new PutContentRequest { Title = "Security basics" });
        seen.Add($"content {content.Id} {content.Title}");
        var joined = await client.ReplaceAudienceMembersAsync("finance", new MembersRequest { UserIds = ["alice", "bob", "carol"] });
        seen.Add($"joined {joined.Joined} operation {joined.Operation.Href}");
        var created = await client.CreateAssignmentAsync(new CreateAssignmentRequest
        {
            AudienceId = "finance", PrimaryContentId = "security-101", CompletionPeriod = "P30D",
        });
        var aid = created.Assignment.Id;
        seen.Add($"assignment {aid} {created.Assignment.CompletionPeriod}");

        EnrolmentPage page = null!;
        for (var i = 0; i < 100; i++)
        {
            page = await client.ListAssignmentEnrolmentsAsync(aid);
            if (page.Items.Count == 3) break;
            await Task.Delay(100);
        }
        seen.Add("enrolments " + string.Join(",", page.Items.OrderBy(e => e.UserId).Select(e => $"{e.UserId}:{Lower(e.Status)}")));

        var alice = (await client.ListAssignmentEnrolmentsAsync(aid, userId: "alice", limit: 10)).Items.Single();
        var enrolment = await client.GetEnrolmentAsync(aid, alice.Id);
        seen.Add($"alice {Lower(enrolment.Status)} due {enrolment.DueDate:O} log {enrolment.EventLog.Count}");

        var completion = await client.RecordCompletionAsync(new RecordCompletionRequest
        {
            CompletionId = "c-1", UserId = "alice", ContentId = "security-101", CompletedAt = DateTimeOffset.UtcNow, Answer = 87,
        });
        seen.Add($"completed {completion.Completed.Count}");
        enrolment = await client.GetEnrolmentAsync(aid, alice.Id);
        seen.Add($"alice {Lower(enrolment.Status)} {enrolment.EventLog.Last().EventType} {enrolment.EventLog.Last().CompletionId}");

        var bob = (await client.ListAssignmentEnrolmentsAsync(aid, userId: "bob")).Items.Single();
        var archived = await client.ArchiveEnrolmentAsync(aid, bob.Id);
        seen.Add($"bob {Lower(archived.Status)}");

        var left = await client.RemoveAudienceMemberAsync("finance", "carol");
        seen.Add($"carol left {left.Left}");
        await client.AddAudienceMembersAsync("finance", new MembersRequest { UserIds = ["carol"] });

        var events = await client.GetEnrolmentEventsAsync(aid, alice.Id);
        seen.Add("events " + string.Join(",", events.Select(e => e.EventType)));
        var operation = await client.GetOperationAsync(joined.Operation.Id);
        seen.Add($"operation {Lower(operation.Status)}");
        return seen;
    }

    private static string Lower(object value) => value.ToString()!.ToLowerInvariant();
}
