using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Enrolment.Api.Tests;

/// <summary>One request a receiver got: its headers, raw body, and the status it answered.</summary>
public sealed record ReceivedWebhook(Dictionary<string, string> Headers, byte[] Body, int Answered, DateTime At)
{
    public JsonElement Json => JsonDocument.Parse(Body).RootElement;
    public string Header(string name) => Headers.TryGetValue(name, out var v) ? v : throw new Xunit.Sdk.XunitException($"No header {name} in {string.Join(", ", Headers.Keys)}");
    public Guid EnrolmentId => Json.GetProperty("enrolmentId").GetGuid();
    public long StreamVersion => Json.GetProperty("streamVersion").GetInt64();
    public bool Ok => Answered is >= 200 and < 300;

    /// <summary>What a receiver must check: sha256= and the lowercase hex HMAC-SHA256 of the raw body under the secret's UTF-8 bytes.</summary>
    public bool SignatureValid(string secret) =>
        Header("x-hmac-signature") == "sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), Body));
}

/// <summary>A real HTTP receiver: a small Kestrel app on a loopback port that records every request and answers what <see cref="Answer"/> says.</summary>
public sealed class WebhookReceiver : IAsyncDisposable
{
    private readonly WebApplication app;
    public ConcurrentQueue<ReceivedWebhook> Received { get; } = new();

    /// <summary>The status to answer a request with (given how many requests came before it); 200 by default.</summary>
    public Func<int, int> Answer { get; set; } = _ => 200;
    private int count;

    private WebhookReceiver(WebApplication app) => this.app = app;

    public static async Task<WebhookReceiver> Start()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        var receiver = new WebhookReceiver(app);
        app.MapPost("/hook", async (HttpContext http) =>
        {
            using var buffer = new MemoryStream();
            await http.Request.Body.CopyToAsync(buffer);
            var status = receiver.Answer(Interlocked.Increment(ref receiver.count) - 1);
            receiver.Received.Enqueue(new ReceivedWebhook(
                http.Request.Headers.ToDictionary(h => h.Key.ToLowerInvariant(), h => h.Value.ToString()), buffer.ToArray(), status, DateTime.UtcNow));
            return Results.StatusCode(status);
        });
        await app.StartAsync();
        return receiver;
    }

    public string Url => app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First() + "/hook";

    public async ValueTask DisposeAsync() => await app.DisposeAsync();
}
