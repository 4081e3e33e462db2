using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Auth;
using Enrolment.Api.Infrastructure.Production;
using JasperFx.Events.Projections;
using Marten;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Microsoft.Extensions.Options;

namespace Enrolment.Api.Features.Mimecast;

/// <summary>The Mimecast-compatible "get training details" feature: services, its authentication scheme, Marten mappings, its route.</summary>
public static class MimecastConfiguration
{
    public static void AddMimecast(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        var configuration = builder.Configuration;
        services.AddOptions<MimecastSettings>()
            .Bind(configuration.GetSection("Mimecast"))
            // A missing key is PublishedDefaults' to report ("is not set", with how to make one); a malformed one is this.
            .Validate(s => string.IsNullOrWhiteSpace(s.KeyEncryptionKey) || MimecastSecretCipher.TryDecodeKey(s.KeyEncryptionKey, out _),
                "Mimecast:KeyEncryptionKey must be the Base64 encoding of exactly 32 random bytes (AES-256).")
            .Validate(s => s.AllowedClockSkew > TimeSpan.Zero && s.ReplayWindow >= 2 * s.AllowedClockSkew,
                "Mimecast:ReplayWindow must be at least twice Mimecast:AllowedClockSkew, or a replayed request could outlive its remembered id.")
            .Validate(s => s.DefaultPageSize >= 1 && s.DefaultPageSize <= s.MaxPageSize && s.MaxItemsPerRequest >= 1,
                "Mimecast:DefaultPageSize must be between 1 and Mimecast:MaxPageSize, and Mimecast:MaxItemsPerRequest at least 1.")
            .ValidateOnStart();
        services.AddSingleton<MimecastSecretCipher>();
        services.AddHostedService<SeenRequestCleanup>();
        services.AddPublishedDefaultsRule(PublishedKeyEncryptionKey);
        services.Configure<Microsoft.AspNetCore.OpenApi.OpenApiOptions>(Infrastructure.OpenApi.OpenApiSetup.DocumentName, MimecastOpenApi.Configure);
        services.Configure<RateLimitHeaderOptions>(o => o.MillisecondResetPaths.Add(GetTrainingDetails.Route));

        // The route has its own authentication. Requests to it that reach the default (Basic) scheme are forwarded to
        // the Mimecast scheme, so Basic credentials are never accepted there and MC headers never count as Basic failures.
        services.AddAuthentication()
            .AddScheme<AuthenticationSchemeOptions, MimecastAuthenticationHandler>(MimecastAuthenticationHandler.SchemeName, null);
        services.PostConfigure<AuthenticationSchemeOptions>(BasicAuthenticationHandler.SchemeName, o =>
        {
            var basicSelector = o.ForwardDefaultSelector;
            o.ForwardDefaultSelector = context => IsMimecastRoute(context.Request) ? MimecastAuthenticationHandler.SchemeName : basicSelector?.Invoke(context);
        });

        services.ConfigureMarten(opts =>
        {
            opts.Schema.For<MimecastKey>().SingleTenanted().DoNotPartition();
            opts.Schema.For<MimecastSeenRequest>().SingleTenanted().DoNotPartition().Duplicate(x => x.ExpiresAt, pgType: "timestamptz");
        });
    }

    /// <summary>Outside Development the service refuses to start without a key-encryption key of its own.</summary>
    public static IEnumerable<string> PublishedKeyEncryptionKey(IConfiguration configuration)
    {
        var kek = configuration["Mimecast:KeyEncryptionKey"]?.Trim();
        if (string.IsNullOrEmpty(kek) || kek == MimecastSettings.DevelopmentKeyEncryptionKey)
            yield return (string.IsNullOrEmpty(kek) ? "Mimecast:KeyEncryptionKey is not set" : "Mimecast:KeyEncryptionKey is the development key published in appsettings.json") +
                         ". Generate a key with `openssl rand -base64 32` (or `dotnet Enrolment.Api.dll mimecast generate-key`) and set it as the environment variable " +
                         "Mimecast__KeyEncryptionKey from your secret store. Mimecast keys issued under the old key: also set Mimecast__PreviousKeyEncryptionKey to it " +
                         "and run `mimecast rotate-key` (docs/operations.md, Running in production).";
    }

    public static void MapMimecast(this WebApplication app)
    {
        var policy = new AuthorizationPolicyBuilder(MimecastAuthenticationHandler.SchemeName).RequireAuthenticatedUser().Build();
        app.MapPost(GetTrainingDetails.Route, GetTrainingDetails.Handle)
            .RequireAuthorization(policy)
            .WithName("getTrainingDetails")
            .WithTags("Mimecast")
            .WithSummary("Mimecast-compatible training details (Mimecast API 1.0 request signing; see docs/mimecast.md).")
            .Accepts<TrainingDetailsRequest>("application/json")
            .Produces<TrainingDetailsAnswer>(StatusCodes.Status200OK)
            .Produces<MimecastEnvelope>(StatusCodes.Status400BadRequest)
            .Produces<MimecastEnvelope>(StatusCodes.Status401Unauthorized)
            .Produces<MimecastEnvelope>(StatusCodes.Status403Forbidden)
            .Produces<MimecastEnvelope>(StatusCodes.Status429TooManyRequests);
    }

    private static bool IsMimecastRoute(HttpRequest request) =>
        request.Path.StartsWithSegments(GetTrainingDetails.Route, StringComparison.OrdinalIgnoreCase);

    /// <summary>The documented request shape, for the OpenAPI document only: the endpoint reads the body itself.</summary>
    private sealed record TrainingDetailsRequest(IReadOnlyList<TrainingDetailsRequestItem>? Data = null, TrainingDetailsRequestMeta? Meta = null);
    private sealed record TrainingDetailsRequestItem(string UserId);
    private sealed record TrainingDetailsRequestMeta(MimecastPagination? Pagination = null);

    /// <summary>The documented answer: the envelope whose data items are <see cref="TrainingDetails"/>.</summary>
    private sealed record TrainingDetailsAnswer(MimecastMeta Meta, IReadOnlyList<TrainingDetails> Data, IReadOnlyList<MimecastFail> Fail);

}
