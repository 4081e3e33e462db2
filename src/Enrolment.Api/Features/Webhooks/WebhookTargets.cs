using System.Net;
using System.Net.Sockets;

namespace Enrolment.Api.Features.Webhooks;

/// <summary>
/// Keeps webhooks from being an open proxy into the service's own network: targets must be https and resolve only to
/// public addresses, checked when the webhook is created and again on every connection (a name that resolved to a public
/// address then may resolve to 127.0.0.1 now: DNS rebinding). Webhooks:AllowPrivateTargets lifts both rules.
/// </summary>
public static class WebhookTargets
{
    public const int MaxUrlLength = 2048;

    /// <summary>Why the URL cannot be a webhook target, or null when it can.</summary>
    public static async Task<string?> Refusal(string? url, bool allowPrivate, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(url)) return "url is required: the https address deliveries are POSTed to.";
        if (url.Length > MaxUrlLength) return $"url must be at most {MaxUrlLength} characters.";
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttps && uri.Scheme != Uri.UriSchemeHttp))
            return "url must be an absolute https URL such as https://hooks.example.com/enrolments.";
        if (uri.Scheme != Uri.UriSchemeHttps && !allowPrivate) return "url must use https: deliveries carry your users' training records.";
        if (!string.IsNullOrEmpty(uri.UserInfo)) return "url must not carry credentials; verify deliveries with the x-hmac-signature header instead.";
        if (!string.IsNullOrEmpty(uri.Fragment)) return "url must not have a #fragment.";
        if (allowPrivate) return null;

        IPAddress[] addresses;
        if (IPAddress.TryParse(uri.DnsSafeHost, out var literal)) addresses = [literal];
        else
        {
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                timeout.CancelAfter(TimeSpan.FromSeconds(5));
                addresses = await Dns.GetHostAddressesAsync(uri.DnsSafeHost, timeout.Token);
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException && !ct.IsCancellationRequested)
            {
                return $"url's host '{uri.DnsSafeHost}' does not resolve; use a host name the service can resolve.";
            }
        }
        if (addresses.Length == 0) return $"url's host '{uri.DnsSafeHost}' does not resolve; use a host name the service can resolve.";
        var inside = addresses.FirstOrDefault(IsPrivate);
        return inside is null ? null : $"url's host resolves to {inside}, a loopback, private or link-local address: webhook targets must be public.";
    }

    /// <summary>
    /// The connect step of the delivery client: resolves the host itself and connects only to public addresses, so
    /// what was checked is what is connected to.
    /// </summary>
    public static Func<SocketsHttpConnectionContext, CancellationToken, ValueTask<Stream>> Connect(bool allowPrivate) => async (context, ct) =>
    {
        var host = context.DnsEndPoint.Host;
        var addresses = IPAddress.TryParse(host, out var literal) ? [literal] : await Dns.GetHostAddressesAsync(host, ct);
        var allowed = allowPrivate ? addresses : addresses.Where(a => !IsPrivate(a)).ToArray();
        if (allowed.Length == 0)
            throw new HttpRequestException($"Refused to connect: {host} resolves only to loopback, private or link-local addresses ({string.Join(", ", addresses.Select(a => a.ToString()))}).");

        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(allowed, context.DnsEndPoint.Port, ct);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    };

    /// <summary>Loopback, private, link-local, shared (CGNAT), unspecified, multicast and other non-public ranges.</summary>
    public static bool IsPrivate(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        if (IPAddress.IsLoopback(address)) return true;
        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            var b = address.GetAddressBytes();
            return b[0] switch
            {
                0 or 10 or 127 => true,
                100 => b[1] >= 64 && b[1] <= 127,          // 100.64.0.0/10 carrier-grade NAT
                169 => b[1] == 254,                         // link-local, cloud metadata services
                172 => b[1] >= 16 && b[1] <= 31,
                192 => (b[1] == 168) || (b[1] == 0 && b[2] == 0), // 192.168/16, 192.0.0/24 (IETF protocol assignments)
                198 => b[1] == 18 || b[1] == 19,            // 198.18.0.0/15 benchmarking
                >= 224 => true,                             // multicast, reserved, broadcast
                _ => false,
            };
        }
        if (address.AddressFamily == AddressFamily.InterNetworkV6)
        {
            if (address.Equals(IPAddress.IPv6None) || address.IsIPv6LinkLocal || address.IsIPv6SiteLocal || address.IsIPv6Multicast || address.IsIPv6UniqueLocal)
                return true;
            var b = address.GetAddressBytes();
            if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8) return true; // 2001:db8::/32 documentation
            if (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b) return IsPrivate(new IPAddress(b[12..]));  // NAT64 of an IPv4 address
            return false;
        }
        return true;
    }
}
