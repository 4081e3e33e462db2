using Enrolment.Api.Infrastructure;
using System.Net;
using Enrolment.Api.Features.Mimecast;
using Enrolment.Reliability;
using Marten;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using NodaTime;
using Xunit.Abstractions;

namespace Enrolment.Api.Tests;

/// <summary>
/// The lighter, in-process versions of ./build/reliability.sh's security scenarios (tests/Enrolment.Reliability): the
/// same scenario classes against the Alba host. Hostile input runs a tenth of its requests; the service is not a separate
/// process here (no Kestrel limits, no kill or outage), and the credentials scenario's timing figure is reported, not held
/// to a goal. Each test fails with the scenario's findings.
/// </summary>
public sealed class ReliabilityScenarioTests(AppFixture fixture, ITestOutputHelper output) : ApiTest(fixture)
{
    /// <summary>Fixed, so a failure replays; ENROLMENT_RELIABILITY_SEED explores other seeds.</summary>
    private static readonly int Seed = int.TryParse(Environment.GetEnvironmentVariable("ENROLMENT_RELIABILITY_SEED"), out var seed) ? seed : 20261124;

    [Fact]
    public async Task Hostile_input_is_refused_with_problem_documents_and_writes_nothing() =>
        AssertPassed(await Run(new HostileInputScenario(), scale: 0.1));

    [Fact]
    public async Task Another_tenant_s_ids_and_credentials_reach_nothing_of_this_tenant() =>
        AssertPassed(await Run(new IsolationScenario(), scale: 0.1));

    [Fact]
    public async Task Secrets_are_not_in_logs_responses_or_the_database_and_brute_force_meets_429() =>
        AssertPassed(await Run(new CredentialsScenario(), scale: 0.2));

    private async Task<ScenarioResult> Run(IScenario scenario, double scale)
    {
        var tenants = new List<TenantCredentials> { new(TenantId, AllSecret, ReadSecret, WriteSecret) };
        foreach (var id in new[] { "eu-west-2_TestTenant2", "eu-west-2_TestTenant3" })
        {
            var (all, read, write) = await CreateTenant(id);
            tenants.Add(new TenantCredentials(id, all, read, write));
        }

        var logFile = Path.Combine(Path.GetTempPath(), $"enrolment-{scenario.Name}-{Guid.NewGuid():N}.log");
        using var logs = new FileLogger(logFile);
        Host.Services.GetRequiredService<ILoggerFactory>().AddProvider(logs);
        try
        {
            var context = new ScenarioContext
            {
                NewClient = () => Host.Server.CreateClient(),
                NewClientFrom = address => new HttpClient(new AsKestrel(Host.Server.CreateHandler(c => c.Connection.RemoteIpAddress = address))) { BaseAddress = Host.Server.BaseAddress },
                ConnectionString = AppFixture.ConnectionString,
                Tenants = tenants,
                IssueMimecastKey = IssueMimecastKey,
                ServiceLogFiles = [logFile],
                Scale = scale,
                Seed = Seed,
            };
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
            var result = await scenario.Run(context, timeout.Token);
            output.WriteLine(Describe(result));
            return result;
        }
        finally
        {
            logs.Stop();
            File.Delete(logFile);
        }
    }

    private async Task<MimecastKeySet> IssueMimecastKey(string tenantId, CancellationToken ct)
    {
        await using var session = await Host.Services.GetRequiredService<IDocumentStore>().OpenHome();
        var issued = MimecastKeys.Issue(session, Host.Services.GetRequiredService<MimecastSecretCipher>(), tenantId, SystemClock.Instance.GetCurrentInstant());
        await session.SaveChangesAsync(ct);
        return new MimecastKeySet(issued.AccessKey, issued.SecretKey, issued.AppId, issued.AppKey);
    }

    private static void AssertPassed(ScenarioResult result) =>
        Assert.True(result.Passed, $"{result.Scenario} (seed {Seed}) missed a goal.\n{Describe(result)}");

    private static string Describe(ScenarioResult result) =>
        $"Findings:{(result.Findings.Count == 0 ? " none" : "\n- " + string.Join("\n- ", result.Findings))}\nFigures ({result.Duration.TotalSeconds:0.0} s):\n" +
        string.Join("\n", result.Figures.Select(f => $"  {f.Name}: {f.Value}{(f.Goal.Length > 0 ? $" (goal {f.Goal})" : "")}"));

    /// <summary>
    /// Answers what Kestrel answers before the application runs where the test server's client throws instead: a path
    /// with an encoded NUL is a 400 with an empty body.
    /// </summary>
    private sealed class AsKestrel(HttpMessageHandler inner) : DelegatingHandler(inner)
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
            request.RequestUri?.AbsolutePath.Contains("%00", StringComparison.Ordinal) == true
                ? Task.FromResult(new HttpResponseMessage(HttpStatusCode.BadRequest) { RequestMessage = request, Content = new ByteArrayContent([]) })
                : base.SendAsync(request, cancellationToken);
    }

    /// <summary>
    /// The host's log lines (as the console would get them: same levels, message, properties, scopes and exception) in a
    /// file, so the credentials scenario scans them as it scans the service's log files out of process. A logger factory
    /// cannot drop a provider, so <see cref="Stop"/> silences it when the test ends.
    /// </summary>
    private sealed class FileLogger(string path) : ILoggerProvider, ISupportExternalScope
    {
        private readonly StreamWriter _writer = new(path) { AutoFlush = true };
        private IExternalScopeProvider? _scopes;
        private volatile bool _stopped;

        public void SetScopeProvider(IExternalScopeProvider scopeProvider) => _scopes = scopeProvider;

        public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

        public void Stop()
        {
            _stopped = true;
            lock (_writer) _writer.Dispose();
        }

        public void Dispose() => Stop();

        private void Write(string line)
        {
            if (_stopped) return;
            lock (_writer)
                if (!_stopped) _writer.WriteLine(line);
        }

        private sealed class Logger(FileLogger owner, string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => owner._scopes?.Push(state);
            public bool IsEnabled(LogLevel logLevel) => !owner._stopped && logLevel != LogLevel.None;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                if (!IsEnabled(logLevel)) return;
                var line = new System.Text.StringBuilder($"{logLevel} {category}: {formatter(state, exception)}");
                if (state is IEnumerable<KeyValuePair<string, object?>> properties)
                    foreach (var (key, value) in properties) line.Append($" {key}={value}");
                owner._scopes?.ForEachScope((scope, builder) => builder.Append($" scope={scope}"), line);
                if (exception is not null) line.Append(' ').Append(exception);
                owner.Write(line.ToString());
            }
        }
    }
}
