using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Auth;
using Marten;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using NodaTime;
using Wolverine.Http;

namespace Enrolment.Api.Features.Content;

public sealed record PutContentRequest(string? Title);

public static class PutContentEndpoint
{
    public const int MaxTitleLength = 500;

    [ProducesResponseType<ContentItem>(StatusCodes.Status200OK)]
    [WolverinePut("/content/{contentId}", OperationId = "putContent"), Authorize(Policy = AuthPolicies.Write)]
    [Tags("Content")]
    [EndpointSummary("Create or update a content item's title.")]
    public static IResult Put(string contentId, PutContentRequest? request, IDocumentSession session, IClock clock)
    {
        if (!RouteIds.TryExternal(contentId, "contentId", out var problem)) return problem!;
        if (request is null) return Problems.Validation("body", "The body must be a JSON object.");
        if (request.Title is { Length: > MaxTitleLength }) return Problems.Validation("title", $"title must be at most {MaxTitleLength} characters.");
        // PostgreSQL cannot store U+0000 in text or jsonb: refuse it here rather than fail at commit.
        if (request.Title?.Contains('\0') == true) return Problems.Validation("title", "title must not contain the NUL character (U+0000).");
        var item = new ContentItem { Id = contentId, Title = request.Title, UpdatedAt = clock.GetCurrentInstant() };
        session.Store(item);
        return Results.Ok(item);
    }
}

public static class GetContentEndpoint
{
    [ProducesResponseType<ContentItem>(StatusCodes.Status200OK), ProducesResponseType(StatusCodes.Status404NotFound)]
    [WolverineGet("/content/{contentId}", OperationId = "getContent"), Authorize(Policy = AuthPolicies.Read)]
    [Tags("Content")]
    [EndpointSummary("The content item and its title.")]
    public static async Task<IResult> Get(string contentId, IQuerySession session, CancellationToken ct)
    {
        if (!RouteIds.TryExternal(contentId, "contentId", out var problem)) return problem!;
        var item = await session.LoadAsync<ContentItem>(contentId, ct);
        return item is null ? Problems.NotFound($"There is no content {contentId}.") : Results.Ok(item);
    }
}
