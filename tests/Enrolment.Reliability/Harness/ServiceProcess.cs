using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Enrolment.Reliability.Harness;

/// <summary>
/// The service as production runs it: `dotnet Enrolment.Api.dll` from its own folder (so it finds appsettings.json),
/// configured by environment variables. Each start writes stdout and stderr to a log file of its own. <paramref name="name"/>
/// names the log files and the pid file: more nodes of the service (the scale-out scenario) run side by side.
/// </summary>
public sealed class ServiceProcess(string serviceDll, IReadOnlyDictionary<string, string> environment, Uri baseAddress, string logDirectory, Action<string> log,
    string name = "service") : IServiceNode
{
    private readonly object _gate = new();
    private readonly List<string> _logFiles = [];
    private Process? _process;
    private StreamWriter? _logWriter;
    private int _starts;

    /// <summary>Every log file written so far, one per start (a live list: it grows as the service is restarted).</summary>
    public IReadOnlyList<string> LogFiles => new LiveList(this);

    /// <summary>True when the current process runs with settings a scenario asked for (see <see cref="StartWith"/>).</summary>
    public bool HasOverrides { get; private set; }

    public bool IsRunning { get { lock (_gate) return _process is { HasExited: false }; } }

    public int? ProcessId { get { lock (_gate) return _process?.Id; } }

    public Uri BaseAddress => baseAddress;

    public string Name => name;

    // build/reliability.sh kills whatever a pid file names if the program itself was killed.
    private string PidFile => Path.Combine(logDirectory, $"{name}.pid");

    public Task Start(CancellationToken ct) => Launch(new Dictionary<string, string>(), ct);

    public async Task StartWith(IReadOnlyDictionary<string, string> settings, CancellationToken ct)
    {
        if (IsRunning) await Stop();
        await Launch(settings, ct);
    }

    private async Task Launch(IReadOnlyDictionary<string, string> overrides, CancellationToken ct)
    {
        lock (_gate)
            if (_process is { HasExited: false }) return;
        // Another program on the port would answer the health checks in our service's place.
        if (await PortAnswers(ct))
            throw new InvalidOperationException($"Something already listens on {baseAddress}; stop it or pass another --port.");
        lock (_gate)
        {
            if (_process is { HasExited: false }) return;
            CloseLog();
            _starts++;
            var logFile = Path.Combine(logDirectory, $"{name}-{_starts:00}.log");
            _logWriter = new StreamWriter(new FileStream(logFile, FileMode.Create, FileAccess.Write, FileShare.ReadWrite)) { AutoFlush = true };
            _logFiles.Add(logFile);

            var info = new ProcessStartInfo("dotnet", [serviceDll])
            {
                WorkingDirectory = Path.GetDirectoryName(Path.GetFullPath(serviceDll))!,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            foreach (var (key, value) in environment) info.Environment[key] = value;
            foreach (var (key, value) in overrides) info.Environment[key] = value;
            HasOverrides = overrides.Count > 0;

            var process = new Process { StartInfo = info, EnableRaisingEvents = true };
            var writer = _logWriter;
            process.OutputDataReceived += (_, e) => Append(writer, e.Data);
            process.ErrorDataReceived += (_, e) => Append(writer, e.Data);
            process.Start();
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            _process = process;
            File.WriteAllText(PidFile, process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture));
            log($"{name} started (pid {process.Id}, log {Path.GetFileName(logFile)}{(HasOverrides ? ", with " + string.Join(", ", overrides.Select(o => $"{o.Key}={o.Value}")) : "")})");
        }
    }

    private async Task<bool> PortAnswers(CancellationToken ct)
    {
        using var probe = new System.Net.Sockets.TcpClient();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(1));
        try
        {
            await probe.ConnectAsync(baseAddress.Host, baseAddress.Port, timeout.Token);
            return true;
        }
        catch (Exception e) when (e is System.Net.Sockets.SocketException or OperationCanceledException && !ct.IsCancellationRequested) { return false; }
    }

    private static void Append(StreamWriter writer, string? line)
    {
        if (line is null) return;
        lock (writer)
        {
            try { writer.WriteLine(line); } catch (ObjectDisposedException) { }
        }
    }

    public async Task KillHard()
    {
        Process? process;
        lock (_gate) process = _process;
        if (process is null || process.HasExited) return;
        // On Linux Process.Kill is SIGKILL: no shutdown hooks, no flush, open transactions die with their connections.
        process.Kill(entireProcessTree: true);
        await process.WaitForExitAsync();
        log($"{name} killed with SIGKILL (pid {process.Id})");
        RemovePidFile();
    }

    public async Task Stop()
    {
        Process? process;
        lock (_gate) process = _process;
        if (process is null || process.HasExited) return;
        // SIGTERM: the host's graceful shutdown (in-flight requests finish, Wolverine releases its work).
        _ = SendSignal(process.Id, 15);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try { await process.WaitForExitAsync(timeout.Token); }
        catch (OperationCanceledException)
        {
            log($"{name} did not stop within 30 s of SIGTERM; killing it (pid {process.Id})");
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }
        log($"{name} stopped (pid {process.Id}, exit code {process.ExitCode})");
        RemovePidFile();
    }

    public async Task<TimeSpan> WaitUntilReady(TimeSpan timeout, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        using var client = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(5) };
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            Process? process;
            lock (_gate) process = _process;
            if (process is null || process.HasExited)
                throw new InvalidOperationException($"The service is not running (exit code {(process is null ? "-" : process.ExitCode.ToString(System.Globalization.CultureInfo.InvariantCulture))}). Last lines of its log:\n{Tail(20)}");
            try
            {
                using var response = await client.GetAsync("/health/ready", ct);
                if (response.IsSuccessStatusCode) return clock.Elapsed;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !ct.IsCancellationRequested) { }
            if (clock.Elapsed > timeout)
                throw new TimeoutException($"The service was not ready within {timeout.TotalSeconds:0} s. Last lines of its log:\n{Tail(20)}");
            await Task.Delay(100, ct);
        }
    }

    /// <summary>The last lines of the current log file, for error messages.</summary>
    public string Tail(int lines)
    {
        string? file;
        lock (_gate) file = _logFiles.LastOrDefault();
        if (file is null) return "(no log)";
        try
        {
            using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            using var reader = new StreamReader(stream);
            var all = reader.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries);
            return string.Join('\n', all.TakeLast(lines));
        }
        catch (IOException e) { return $"(could not read {file}: {e.Message})"; }
    }

    private void RemovePidFile()
    {
        try { File.Delete(PidFile); } catch (IOException) { }
    }

    private void CloseLog()
    {
        var writer = _logWriter;
        if (writer is null) return;
        lock (writer) writer.Dispose();
        _logWriter = null;
    }

    public async ValueTask DisposeAsync()
    {
        await Stop();
        lock (_gate) CloseLog();
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SendSignal(int pid, int signal);

    private sealed class LiveList(ServiceProcess owner) : IReadOnlyList<string>
    {
        private List<string> Snapshot() { lock (owner._gate) return [.. owner._logFiles]; }
        public string this[int index] => Snapshot()[index];
        public int Count => Snapshot().Count;
        public IEnumerator<string> GetEnumerator() => Snapshot().GetEnumerator();
        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }
}
