using Enrolment.Api.Infrastructure;
using Microsoft.Extensions.FileProviders;

namespace Enrolment.Api.Features.Pages;

/// <summary>
/// Serves the pages under /app/: static files built at build time from src/Enrolment.Pages (build/pages.sh) into
/// Pages:Root. They call the public API with the signed-in tenant's Basic credentials like any other client, so they
/// need nothing of their own on the server: no session, no cookie, no route of their own.
/// </summary>
public static class ServePages
{
    public const string Path = "/app";

    // Everything the pages load comes from this service: scripts, styles, and the API (connect-src). Nothing else may run.
    private const string ContentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

    public static void UsePages(this WebApplication app)
    {
        var root = Root(app.Configuration, app.Environment);
        if (!File.Exists(System.IO.Path.Combine(root, "index.html")))
        {
            app.Logger.LogWarning("The pages under {Path}/ are not built ({Root} has no index.html): they answer 503 until ./build/pages.sh (run by ./build/run.sh) builds them", Path, root);
            app.Use((context, next) => context.Request.Path.StartsWithSegments(Path)
                ? Problems.Make(StatusCodes.Status503ServiceUnavailable, "pages-not-built", "The pages are not built.",
                    "This build of the service has no pages: run ./build/pages.sh (./build/run.sh does) and restart it.").ExecuteAsync(context)
                : next(context));
            return;
        }

        var files = new PhysicalFileProvider(root);
        // The pages link to each other relatively: /app must be /app/.
        app.Use((context, next) =>
        {
            if (context.Request.Path.Value == Path)
            {
                context.Response.Redirect(Path + "/" + context.Request.QueryString);
                return Task.CompletedTask;
            }
            return next(context);
        });
        app.UseDefaultFiles(new DefaultFilesOptions { FileProvider = files, RequestPath = Path });
        app.UseStaticFiles(new StaticFileOptions
        {
            FileProvider = files,
            RequestPath = Path,
            OnPrepareResponse = ctx =>
            {
                var headers = ctx.Context.Response.Headers;
                headers.ContentSecurityPolicy = ContentSecurityPolicy;
                headers.XContentTypeOptions = "nosniff";
                headers["Referrer-Policy"] = "no-referrer";
                // File names are not content-hashed: revalidate (ETag) so a new build is seen at once.
                headers.CacheControl = "no-cache";
            },
        });
    }

    /// <summary>Pages:Root, relative to the content root; by default wwwroot/app, where build/pages.sh writes.</summary>
    public static string Root(IConfiguration configuration, IWebHostEnvironment environment) =>
        System.IO.Path.GetFullPath(System.IO.Path.Combine(environment.ContentRootPath, configuration.GetValue("Pages:Root", "wwwroot/app")!));
}
