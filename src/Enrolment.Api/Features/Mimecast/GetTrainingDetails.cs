using System.Buffers.Text;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Enrolment.Api.Features.Content;
using Enrolment.Api.Infrastructure.Auth;
using Enrolment.Domain;
using Marten;
using Marten.Linq.MatchesSql;
using Microsoft.Extensions.Options;
using NodaTime;

namespace Enrolment.Api.Features.Mimecast;

/// <summary>One user's training, as Mimecast's "get training details" answers it.</summary>
public sealed record TrainingDetails(string UserId, IReadOnlyList<TrainingItem> Training, bool NeedEngagement, MeritBadge MeritBadge);

/// <summary>One enrolment as a Mimecast training item (field names as the Mimecast documentation's field table and PRODUCT.md spell them).</summary>
public sealed record TrainingItem(
    string Title,
    string TitleId,
    Instant AssignedTimeStamp,
    bool Watched,
    Instant? WatchedDate,
    double? MyAnswer,
    bool OnWatchlist);

/// <summary>
/// The user's merit badge: earned by <see cref="StreakToEarn"/> on-time completions in a row (across all the user's
/// training, in time order) since the user last missed a due date; lost again at the next miss.
/// </summary>
public sealed record MeritBadge(bool Earned, int CurrentStreak, int OnTimeCompletions, int LateCompletions)
{
    public const int StreakToEarn = 3;

    public static MeritBadge For(IReadOnlyCollection<EnrolmentState> records)
    {
        var lastMiss = records.Max(r => r.LastMissAt);
        var streak = records.Sum(r => r.OnTimeSinceLastMiss.Count(at => lastMiss is null || at > lastMiss.Value));
        return new MeritBadge(streak >= StreakToEarn, streak, records.Sum(r => r.OnTimeCompletions), records.Sum(r => r.LateCompletions));
    }
}

/// <summary>
/// POST /api/awareness-training/user/get-training-details. Authenticated by <see cref="MimecastAuthenticationHandler"/>
/// (the tenant is the access key's). <c>data: [{ "userId" }, …]</c> answers those users; <c>data: []</c> pages
/// through every user of the tenant. A page of users costs one query for their training records and one for the
/// content titles, whatever the number of enrolments.
/// </summary>
public static class GetTrainingDetails
{
    public const string Route = "/api/awareness-training/user/get-training-details";

    public static async Task<IResult> Handle(HttpContext context, IDocumentStore store, IOptions<MimecastSettings> options, CancellationToken ct)
    {
        var settings = options.Value;
        var tenantId = context.User.FindFirst(BasicAuthenticationHandler.TenantClaim)?.Value
            ?? throw new InvalidOperationException("The Mimecast route ran without an authenticated tenant.");

        var (request, refusal) = await Read(context.Request, settings, ct);
        if (refusal is not null) return refusal.ToResult();

        await using var session = store.QuerySession(tenantId);
        return request!.Items.Count == 0
            ? await AllUsers(session, request, ct)
            : await NamedUsers(session, request.Items, ct);
    }

    private sealed record TrainingRequest(IReadOnlyList<JsonNode?> Items, int PageSize, string? PageToken, string? After);

    private static async Task<(TrainingRequest?, MimecastEnvelope?)> Read(HttpRequest http, MimecastSettings settings, CancellationToken ct)
    {
        static (TrainingRequest?, MimecastEnvelope?) BadRequest(string code, string message, JsonNode? key = null) =>
            (null, MimecastEnvelope.Error(StatusCodes.Status400BadRequest, code, message, key));

        JsonNode? root;
        try
        {
            using var reader = new StreamReader(http.Body, Encoding.UTF8);
            var text = await reader.ReadToEndAsync(ct);
            // No body at all reads as { "data": [] }.
            root = string.IsNullOrWhiteSpace(text) ? new JsonObject() : JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { MaxDepth = 32 });
        }
        catch (JsonException)
        {
            return BadRequest(MimecastCodes.MalformedRequest, "The request body is not valid JSON. Send { \"data\": [ { \"userId\": \"…\" } ] }, or { \"data\": [] } for every user.");
        }
        if (root is not JsonObject body)
            return BadRequest(MimecastCodes.MalformedRequest, "The request body must be a JSON object: { \"data\": [ … ] }.");
        if (!StringsReadable(body))
            return BadRequest(MimecastCodes.MalformedRequest, "The request body holds a string that is not valid Unicode (an escaped lone surrogate such as \\ud800).");

        var items = new List<JsonNode?>();
        switch (Property(body, "data"))
        {
            case null:
                break;
            case JsonArray array:
                items.AddRange(array);
                break;
            default:
                return BadRequest(MimecastCodes.MalformedRequest, "data must be an array of { \"userId\": \"…\" } items (empty for every user).");
        }
        if (items.Count > settings.MaxItemsPerRequest)
            return BadRequest(MimecastCodes.TooManyItems, $"At most {settings.MaxItemsPerRequest} items per request; send data: [] to page through every user.");

        var pageSize = settings.DefaultPageSize;
        string? pageToken = null, after = null;
        if (Property(body, "meta") is JsonObject meta && Property(meta, "pagination") is { } paginationNode)
        {
            if (paginationNode is not JsonObject pagination)
                return BadRequest(MimecastCodes.InvalidPagination, "meta.pagination must be an object { \"pageSize\", \"pageToken\" }.", paginationNode.DeepClone());
            if (Property(pagination, "pageSize") is { } size)
            {
                if (size is not JsonValue v || !v.TryGetValue(out int requested) || requested < 1 || requested > settings.MaxPageSize)
                    return BadRequest(MimecastCodes.InvalidPagination, $"meta.pagination.pageSize must be a whole number from 1 to {settings.MaxPageSize}.", pagination.DeepClone());
                pageSize = requested;
            }
            if (Property(pagination, "pageToken") is { } token)
            {
                if (token is not JsonValue t || !t.TryGetValue(out string? tokenText) || !PageTokens.TryDecode(tokenText, out after))
                    return BadRequest(MimecastCodes.InvalidPagination, "meta.pagination.pageToken is not one this service issued: pass meta.pagination.next from the previous answer as it is.", pagination.DeepClone());
                pageToken = tokenText;
            }
        }
        return (new TrainingRequest(items, pageSize, pageToken, after), null);
    }

    /// <summary>
    /// JsonNode.Parse accepts an escaped lone surrogate ("\ud800") and throws only when that string is read, deep in the
    /// handler: every name and string is read once here, so such a body is a malformed request rather than a 500.
    /// </summary>
    private static bool StringsReadable(JsonNode? node)
    {
        try
        {
            Read(node);
            return true;
        }
        catch (InvalidOperationException)
        {
            return false;
        }

        static void Read(JsonNode? node)
        {
            switch (node)
            {
                case JsonObject obj:
                    foreach (var (_, value) in obj) Read(value);
                    break;
                case JsonArray array:
                    foreach (var item in array) Read(item);
                    break;
                case JsonValue value when value.GetValueKind() == JsonValueKind.String:
                    value.GetValue<string>();
                    break;
            }
        }
    }

    /// <summary>Property names are read case-insensitively, as the rest of the API reads JSON.</summary>
    private static JsonNode? Property(JsonObject obj, string name)
    {
        foreach (var (key, value) in obj)
            if (string.Equals(key, name, StringComparison.OrdinalIgnoreCase)) return value;
        return null;
    }

    private static async Task<IResult> NamedUsers(IQuerySession session, IReadOnlyList<JsonNode?> items, CancellationToken ct)
    {
        var userIds = new string?[items.Count];
        var fail = new List<MimecastFail>();
        var errors = new MimecastError?[items.Count];
        for (var i = 0; i < items.Count; i++)
        {
            var userId = items[i] is JsonObject item && Property(item, "userId") is JsonValue value && value.TryGetValue(out string? text) ? text : null;
            if (string.IsNullOrWhiteSpace(userId))
                errors[i] = new MimecastError(MimecastCodes.Blank, "userId is required: each data item is { \"userId\": \"…\" }.");
            else if (!Ids.IsValidExternalId(userId))
                errors[i] = new MimecastError(MimecastCodes.InvalidUserId, "userId must be 1–64 characters of A–Z, a–z, 0–9 and . _ : @ -");
            else
                userIds[i] = userId;
        }

        var wanted = userIds.OfType<string>().Distinct(StringComparer.Ordinal).ToArray();
        var records = wanted.Length == 0
            ? []
            : await session.Query<EnrolmentState>().Where(r => r.UserId.IsOneOf(wanted)).ToListAsync(ct);
        var details = await Details(session, records, ct);

        var data = new List<object>();
        for (var i = 0; i < items.Count; i++)
        {
            if (userIds[i] is { } userId && details.TryGetValue(userId, out var found))
                data.Add(found);
            else
                fail.Add(new MimecastFail(items[i]?.DeepClone(), [errors[i] ?? new MimecastError(MimecastCodes.UserNotFound,
                    $"No training is recorded for user '{userIds[i]}' in this tenant.")]));
        }
        return new MimecastEnvelope(new MimecastMeta(StatusCodes.Status200OK), data, fail).ToResult();
    }

    private static async Task<IResult> AllUsers(IQuerySession session, TrainingRequest request, CancellationToken ct)
    {
        // Keyset paging over distinct user ids: the page's users and all their records in one query. The order (and so
        // the page boundary) is the database's, on both sides of the comparison.
        var table = session.DocumentStore.Options.FindOrResolveDocumentType(typeof(EnrolmentState)).TableName.QualifiedName;
        var records = await session.Query<EnrolmentState>()
            .Where(r => r.MatchesSql(
                $"d.user_id in (select distinct u.user_id from {table} u where u.tenant_id = ? and u.user_id > ? order by u.user_id limit ?)",
                session.TenantId, request.After ?? "", request.PageSize + 1))
            .OrderBy(r => r.UserId)
            .ToListAsync(ct);

        var users = new List<string>();
        foreach (var r in records)
            if (users.Count == 0 || users[^1] != r.UserId) users.Add(r.UserId);
        var hasMore = users.Count > request.PageSize;
        if (hasMore)
        {
            var beyond = users[request.PageSize];
            records = records.Where(r => r.UserId != beyond).ToList();
            users.RemoveAt(request.PageSize);
        }
        var details = await Details(session, records, ct);
        var data = users.Select(u => (object)details[u]).ToList();
        var pagination = new MimecastPagination(request.PageSize, request.PageToken, hasMore ? PageTokens.Encode(users[^1]) : null);
        return new MimecastEnvelope(new MimecastMeta(StatusCodes.Status200OK, pagination), data, []).ToResult();
    }

    /// <summary>The training details of every user among the records, with the content titles loaded in one round trip.</summary>
    private static async Task<Dictionary<string, TrainingDetails>> Details(IQuerySession session, IReadOnlyList<EnrolmentState> records, CancellationToken ct)
    {
        var contentIds = records.Where(r => r.Status != EnrolmentStatus.Archived).Select(r => r.PrimaryContentId).Distinct(StringComparer.Ordinal).ToArray();
        var titles = contentIds.Length == 0
            ? new Dictionary<string, string?>()
            : (await session.LoadManyAsync<ContentItem>(ct, contentIds)).ToDictionary(c => c.Id, c => c.Title, StringComparer.Ordinal);

        return records.GroupBy(r => r.UserId, StringComparer.Ordinal).ToDictionary(g => g.Key, g =>
        {
            // Archived enrolments are no longer assigned training; their history still counts for the merit badge.
            var active = g.Where(r => r.Status != EnrolmentStatus.Archived).OrderBy(r => r.AssignedAt).ThenBy(r => r.PrimaryContentId, StringComparer.Ordinal).ToList();
            var training = active.Select(r => new TrainingItem(
                titles.GetValueOrDefault(r.PrimaryContentId) is { Length: > 0 } title ? title : r.PrimaryContentId,
                r.PrimaryContentId,
                r.AssignedAt,
                // Mimecast's watched: completed in the current period (a waiver is complete but not watched).
                r.Watched,
                r.LastCompletedAt,
                r.LastAnswer,
                r.OnWatchlist)).ToList();
            return new TrainingDetails(g.Key, training, active.Any(r => r.NeedsEngagement), MeritBadge.For(g.ToList()));
        }, StringComparer.Ordinal);
    }
}

/// <summary>Opaque page tokens: base64url of a version byte and the last user id of the previous page.</summary>
public static class PageTokens
{
    private const byte Version = 1;

    public static string Encode(string lastUserId)
    {
        var bytes = new byte[1 + Encoding.UTF8.GetByteCount(lastUserId)];
        bytes[0] = Version;
        Encoding.UTF8.GetBytes(lastUserId, bytes.AsSpan(1));
        return Base64Url.EncodeToString(bytes);
    }

    public static bool TryDecode(string? token, out string? lastUserId)
    {
        lastUserId = null;
        if (string.IsNullOrEmpty(token) || token.Length > 128) return false;
        var bytes = new byte[Base64Url.GetMaxDecodedLength(token.Length)];
        if (Base64Url.DecodeFromChars(token, bytes, out _, out var written) != System.Buffers.OperationStatus.Done || written < 2 || bytes[0] != Version)
            return false;
        string text;
        try { text = new UTF8Encoding(false, true).GetString(bytes, 1, written - 1); }
        catch (DecoderFallbackException) { return false; }
        if (!Ids.IsValidExternalId(text)) return false;
        lastUserId = text;
        return true;
    }
}
