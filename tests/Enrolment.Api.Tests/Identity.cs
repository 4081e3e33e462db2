using Enrolment.Api.Infrastructure;
using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Alba;
using Enrolment.Api.Infrastructure.Auth;
using Marten;
using Microsoft.Extensions.DependencyInjection;
using NodaTime;

namespace Enrolment.Api.Tests;

/// <summary>Requests as identity providers and OAuth2 clients send them: any method, any media type, raw bodies.</summary>
public static class Identity
{
    public const string ScimJson = "application/scim+json";
    public const string Form = "application/x-www-form-urlencoded";

    public static async Task<ApiResponse> Call(this IAlbaHost host, string method, string url, string? authorization, string? body = null,
        string contentType = ScimJson, string? accept = null, IPAddress? clientIp = null)
    {
        var result = await host.Scenario(s =>
        {
            var send = method switch { "GET" => s.Get, "POST" => s.Post, "PUT" => s.Put, "PATCH" => s.Patch, "DELETE" => s.Delete, _ => throw new ArgumentOutOfRangeException(nameof(method)) };
            send.Url(url);
            if (body is not null)
            {
                var bytes = Encoding.UTF8.GetBytes(body);
                s.ConfigureHttpContext(c =>
                {
                    c.Request.Body = new MemoryStream(bytes);
                    c.Request.ContentLength = bytes.Length;
                    c.Request.ContentType = contentType;
                });
            }
            if (authorization is not null) s.WithRequestHeader("Authorization", authorization);
            if (accept is not null) s.WithRequestHeader("Accept", accept);
            if (clientIp is not null) s.ConfigureHttpContext(c => c.Connection.RemoteIpAddress = clientIp);
            s.IgnoreStatusCode();
        });
        var text = await result.ReadAsTextAsync();
        return new ApiResponse(result.Context.Response.StatusCode, result.Context.Response.Headers, text);
    }

    /// <summary>Asserts a SCIM error document (RFC 7644 §3.12) with this status (and scimType when given).</summary>
    public static JsonNode AssertScimError(this ApiResponse response, int status, string? scimType = null)
    {
        Assert.True(response.Status == status, $"Expected {status}, got {response}");
        Assert.StartsWith(ScimJson, response.ContentType ?? "");
        var error = response.Json;
        Assert.Equal("urn:ietf:params:scim:api:messages:2.0:Error", error["schemas"]![0]!.GetValue<string>());
        Assert.Equal(status.ToString(System.Globalization.CultureInfo.InvariantCulture), error.Str("status"));
        if (scimType is not null) Assert.Equal(scimType, error.Str("scimType"));
        Assert.False(string.IsNullOrEmpty(error.Str("detail")));
        return error;
    }

    /// <summary>Issues another secret of the tenant with these scopes; returns the secret and its id.</summary>
    public static async Task<(string Secret, string SecretId)> AddSecret(IServiceProvider services, string tenantId, params string[] scopes)
    {
        await using var session = await services.GetRequiredService<IDocumentStore>().OpenHome();
        var account = await session.LoadAsync<TenantAccount>(tenantId) ?? throw new InvalidOperationException($"No tenant {tenantId}");
        var secret = Secrets.Generate();
        var record = new ApiSecret { SecretId = Secrets.NewSecretId(), Hash = Secrets.Hash(secret), Scopes = scopes, CreatedAt = SystemClock.Instance.GetCurrentInstant() };
        account.Secrets.Add(record);
        session.Store(account);
        await session.SaveChangesAsync();
        return (secret, record.SecretId);
    }

    public static async Task Revoke(IServiceProvider services, string tenantId, string secretId)
    {
        await using var session = await services.GetRequiredService<IDocumentStore>().OpenHome();
        var account = (await session.LoadAsync<TenantAccount>(tenantId))!;
        account.Secrets.Single(s => s.SecretId == secretId).RevokedAt = SystemClock.Instance.GetCurrentInstant();
        session.Store(account);
        await session.SaveChangesAsync();
    }

    /// <summary>Polls until <paramref name="condition"/> holds (the fan-out is asynchronous); fails with the last state after the timeout.</summary>
    public static async Task Eventually(Func<Task<(bool Holds, string State)>> condition, string what, TimeSpan? timeout = null)
    {
        var clock = Stopwatch.StartNew();
        var limit = timeout ?? TimeSpan.FromSeconds(30);
        while (true)
        {
            var (holds, state) = await condition();
            if (holds) return;
            if (clock.Elapsed > limit) throw new Xunit.Sdk.XunitException($"{what}: not so after {limit}; last seen {state}");
            await Task.Delay(50);
        }
    }
}
