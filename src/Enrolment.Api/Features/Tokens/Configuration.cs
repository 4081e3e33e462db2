namespace Enrolment.Api.Features.Tokens;

/// <summary>
/// Access tokens: POST /oauth2/token is a Wolverine endpoint found by discovery; the tokens themselves (signing, checking,
/// the bearer scheme) are infrastructure every route stands on (Infrastructure/Auth: AccessTokens, BearerAuthentication).
/// This area only checks at start that the signing key is usable, so a bad key stops the service rather than its first token.
/// </summary>
public static class TokensConfiguration
{
    public static void AddTokens(this WebApplicationBuilder builder) =>
        builder.Services.AddHostedService<SigningKeyCheck>();

    private sealed class SigningKeyCheck(Infrastructure.Auth.AccessTokens tokens) : IHostedService
    {
        public Task StartAsync(CancellationToken ct) => tokens.ValidationParameters is null ? throw new InvalidOperationException("No access token validation.") : Task.CompletedTask;
        public Task StopAsync(CancellationToken ct) => Task.CompletedTask;
    }
}
