using System.Text;
using Enrolment.Api.Infrastructure;
using Marten;
using Microsoft.AspNetCore.Http.Extensions;
using Microsoft.AspNetCore.WebUtilities;

namespace Enrolment.Api.Features.Thrive;

/// <summary>One page of a Thrive list: <c>page</c> counts from 1, <c>perPage</c> items each.</summary>
public sealed record ThrivePage(int Page, int PerPage)
{
    public int Offset => (Page - 1) * PerPage;
}

/// <summary>
/// Thrive's paging: the body is a bare JSON array (a Thrive client reads anything else as an empty list), and what
/// an array cannot say travels in headers: the total in <c>X-Total-Count</c>, the neighbouring pages in <c>Link</c>
/// (RFC 8288: first, prev, next, last). A page past the last is an empty array with the same headers.
/// </summary>
public static class ThrivePages
{
    public const int DefaultPerPage = 100;
    public const string TotalCountHeader = "X-Total-Count";
    public const string TotalCountDescription = "How many items match the filters, over all pages.";
    public const string LinkDescription = "RFC 8288 links to the first, previous, next and last pages (absolute URLs with page and perPage).";

    public static ThrivePage? Parse(int? page, int? perPage, int maxPerPage, Dictionary<string, string[]> errors)
    {
        var size = perPage ?? DefaultPerPage;
        var number = page ?? 1;
        if (size is < 1 || size > maxPerPage) errors["perPage"] = [$"perPage must be between 1 and {maxPerPage}."];
        // The offset (page - 1) × perPage must be a row number PostgreSQL can skip to.
        else if (number < 1 || (long)(number - 1) * size > int.MaxValue) errors["page"] = [$"page must be between 1 and {1 + int.MaxValue / size} for perPage={size}."];
        return errors.Count > 0 ? null : new ThrivePage(number, size);
    }

    /// <summary>
    /// Reads one page and the total: the total comes with the page (count(*) over()); a page past the last has no rows
    /// to carry it, so it is counted apart. <paramref name="query"/> builds the query afresh for each use.
    /// </summary>
    public static async Task<(IReadOnlyList<T> Items, long Total)> Read<T>(Func<IQueryable<T>> query, ThrivePage page, CancellationToken ct) where T : notnull
    {
        var items = await query().Stats(out var stats).Skip(page.Offset).Take(page.PerPage).ToListAsync(ct);
        var total = stats.TotalResults;
        if (items.Count == 0 && page.Page > 1) total = await query().CountAsync(ct);
        return (items, total);
    }

    /// <summary>The page's items as a bare array, with the total and the links to the other pages.</summary>
    public static IResult Array<T>(IReadOnlyList<T> items, ThrivePage page, long total) => new ArrayResult<T>(items, page, total);

    /// <summary>The page's items, each already JSON (as PostgreSQL sent it), as a bare array with the total and links.</summary>
    public static IResult RawArray(IReadOnlyList<string> jsonItems, ThrivePage page, long total) => new RawArrayResult(jsonItems, page, total);

    private sealed class RawArrayResult(IReadOnlyList<string> items, ThrivePage page, long total) : IResult
    {
        public Task ExecuteAsync(HttpContext http) =>
            StartArray(http, page, total).WriteAsync("[" + string.Join(",", items) + "]", http.RequestAborted);
    }

    /// <summary>The status and headers every Thrive array answer carries; returns the response to write the body to.</summary>
    private static HttpResponse StartArray(HttpContext http, ThrivePage page, long total)
    {
        var response = http.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "application/json; charset=utf-8";
        response.Headers[TotalCountHeader] = total.ToString(System.Globalization.CultureInfo.InvariantCulture);
        response.Headers.Link = Links(http.Request, page, total);
        return response;
    }

    private sealed class ArrayResult<T>(IReadOnlyList<T> items, ThrivePage page, long total) : IResult
    {
        public Task ExecuteAsync(HttpContext http) =>
            System.Text.Json.JsonSerializer.SerializeAsync(StartArray(http, page, total).Body, items, Json.Options, http.RequestAborted);
    }

    private static string Links(HttpRequest request, ThrivePage page, long total)
    {
        var last = (int)Math.Max(1, (total + page.PerPage - 1) / page.PerPage);
        var links = new List<(int Page, string Rel)> { (1, "first") };
        if (page.Page > 1) links.Add((Math.Min(page.Page - 1, last), "prev"));
        if (page.Page < last) links.Add((page.Page + 1, "next"));
        links.Add((last, "last"));

        var query = QueryHelpers.ParseQuery(request.QueryString.Value);
        var text = new StringBuilder();
        foreach (var (number, rel) in links)
        {
            query["page"] = number.ToString(System.Globalization.CultureInfo.InvariantCulture);
            query["perPage"] = page.PerPage.ToString(System.Globalization.CultureInfo.InvariantCulture);
            var url = UriHelper.BuildAbsolute(request.Scheme, request.Host, request.PathBase, request.Path, QueryString.Create(query));
            if (text.Length > 0) text.Append(", ");
            text.Append('<').Append(url).Append(">; rel=\"").Append(rel).Append('"');
        }
        return text.ToString();
    }

    public static IResult Invalid(Dictionary<string, string[]> errors) => Problems.Validation("The list query is not valid.", errors);
}
