using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Enrolment.Reliability.Harness;

/// <summary>One request a <see cref="WebhookReceiver"/> received: which change it carried, and whether it was accepted (2xx).</summary>
public sealed record WebhookRequest(Guid EnrolmentId, long StreamVersion, string EventType, string WebhookId, byte[] Body, string Signature, bool Accepted, DateTimeOffset ReceivedAt)
{
    public bool SignatureMatches(string secret) =>
        Signature == "sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), Body));
}

/// <summary>
/// An HTTP/1.1 webhook receiver on a loopback port. With <paramref name="failHalf"/> it answers half its requests with a
/// 500 or by dropping the connection (a reset, nothing written); otherwise it accepts every one with a 204. Written on a
/// raw socket because HttpListener cannot drop one: its Abort() still sends the default "200 OK" on Linux, which the
/// service rightly takes for a delivery.
/// </summary>
public sealed class WebhookReceiver(Random random, bool failHalf) : IDisposable
{
    private readonly TcpListener listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource stop = new();
    public ConcurrentQueue<WebhookRequest> Accepted { get; } = new();
    public ConcurrentQueue<WebhookRequest> All { get; } = new();
    public string Url { get; private set; } = "";

    public void Start()
    {
        listener.Start();
        Url = $"http://127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port.ToString(CultureInfo.InvariantCulture)}/hook/";
        _ = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                TcpClient connection;
                try { connection = await listener.AcceptTcpClientAsync(stop.Token); } catch (Exception) { return; }
                _ = Task.Run(() => Serve(connection));
            }
        });
    }

    /// <summary>One keep-alive connection: requests one after another until the client closes it or a request is dropped.</summary>
    private async Task Serve(TcpClient connection)
    {
        using var _ = connection;
        try
        {
            var stream = connection.GetStream();
            while (await ReadHead(stream, stop.Token) is { } head)
            {
                var headers = head.Split("\r\n", StringSplitOptions.RemoveEmptyEntries).Skip(1)
                    .Select(line => line.Split(':', 2)).Where(p => p.Length == 2)
                    .ToDictionary(p => p[0].Trim().ToLowerInvariant(), p => p[1].Trim());
                var body = new byte[int.Parse(headers.GetValueOrDefault("content-length", "0"), CultureInfo.InvariantCulture)];
                await stream.ReadExactlyAsync(body, stop.Token);
                bool fail, drop;
                lock (random) { fail = failHalf && random.Next(2) == 0; drop = fail && random.Next(2) == 0; }
                var json = JsonDocument.Parse(body).RootElement;
                var request = new WebhookRequest(json.GetProperty("enrolmentId").GetGuid(), json.GetProperty("streamVersion").GetInt64(),
                    headers.GetValueOrDefault("x-event-type", ""), headers.GetValueOrDefault("x-webhook-id", ""), body,
                    headers.GetValueOrDefault("x-hmac-signature", ""), !fail, DateTimeOffset.UtcNow);
                All.Enqueue(request);
                if (drop)
                {
                    connection.Client.LingerState = new LingerOption(true, 0); // close with a reset: the client sees the connection die
                    return;
                }
                if (!fail) Accepted.Enqueue(request);
                var answer = fail ? "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n" : "HTTP/1.1 204 No Content\r\n\r\n";
                await stream.WriteAsync(Encoding.ASCII.GetBytes(answer), stop.Token);
            }
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // The client went away (the service was killed) or the receiver stops.
        }
    }

    /// <summary>The request line and headers, up to the blank line; null when the client closed the connection.</summary>
    private static async Task<string?> ReadHead(NetworkStream stream, CancellationToken ct)
    {
        var head = new List<byte>(512);
        var one = new byte[1];
        while (head.Count < 4 || head[^4] != '\r' || head[^3] != '\n' || head[^2] != '\r' || head[^1] != '\n')
        {
            if (await stream.ReadAsync(one, ct) == 0) return null;
            head.Add(one[0]);
        }
        return Encoding.ASCII.GetString(head.ToArray());
    }

    public void Dispose()
    {
        stop.Cancel();
        listener.Stop();
    }
}
