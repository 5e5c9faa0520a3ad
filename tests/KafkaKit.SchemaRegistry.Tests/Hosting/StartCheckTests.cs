using System.Collections.Concurrent;
using KafkaKit.SchemaRegistry.Tests.Support;
using KafkaKit.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace KafkaKit.SchemaRegistry.Tests.Hosting;

/// <summary>
/// What the host's start learns from the registry: refused credentials and missing required subjects fail the start
/// (every problem listed); an unreachable registry only warns and turns the registry health check Degraded.
/// </summary>
[TestFixture]
[CancelAfter(60_000)]
public sealed class StartCheckTests
{
    private const string HealthName = "kafkakit-schema-registry";

    [Test]
    public async Task HostStart_RegistryUrlUnreachable_StartsWithWarningNamingUrl_HealthDegraded()
    {
        var logs = new LogCapture();
        using var host = Host(logs, """ "Url": "http://127.0.0.1:1", "RequestTimeout": "00:00:02" """);

        await host.StartAsync();
        var health = await CheckAsync(host);
        await host.StopAsync();

        Assert.Multiple(() =>
        {
            var warning = logs.Entries.Single(e => e.Id == 4130);
            Assert.That(warning.Level, Is.EqualTo(LogLevel.Warning));
            Assert.That(warning.Message, Does.Contain("http://127.0.0.1:1").And.Contain("unreachable"));
            Assert.That(health.Status, Is.EqualTo(HealthStatus.Degraded));
            Assert.That(health.Description, Does.Contain("http://127.0.0.1:1"));
        });
    }

    [Test]
    public async Task HostStart_RegistryUnavailable_HealthDegradedUntilItAnswers()
    {
        await using var registry = EmbeddedSchemaRegistry.Start();
        registry.SetUnavailable(true);
        var logs = new LogCapture();
        using var host = Host(logs, $$""" "Url": "{{registry.Url}}", "AutoRegisterSchemas": false, "RequiredSubjects": [ "orders-value" ] """);

        await host.StartAsync();
        var during = await CheckAsync(host);
        registry.SetUnavailable(false);
        var after = await CheckAsync(host);
        await host.StopAsync();

        Assert.Multiple(() =>
        {
            Assert.That(logs.Entries.Select(e => e.Id), Does.Contain(4130));
            Assert.That(during.Status, Is.EqualTo(HealthStatus.Degraded));
            Assert.That(after.Status, Is.EqualTo(HealthStatus.Healthy), after.Description);
            Assert.That(logs.Entries.Select(e => e.Id), Does.Contain(4132), "the recovery is logged");
        });
    }

    [Test]
    public async Task HostStart_WrongCredentials_FailsNamingUrlAndSetting_PasswordNotShown()
    {
        await using var registry = EmbeddedSchemaRegistry.Start(basicAuthUserInfo: "app:right");
        using var host = Host(new LogCapture(), $$""" "Url": "{{registry.Url}}", "BasicAuthUserInfo": "app:wrong" """);

        var error = Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.Multiple(() =>
        {
            Assert.That(error!.Failures.Count(), Is.EqualTo(1));
            Assert.That(error.Message, Does.Contain(registry.Url).And.Contain("401").And.Contain("BasicAuthUserInfo").And.Contain("'app'"));
            Assert.That(error.Message, Does.Not.Contain("wrong"));
        });
    }

    [Test]
    public async Task HostStart_RequiredSubjectsMissingWithAutoRegisterOff_FailsListingEachMissingSubject()
    {
        await using var registry = EmbeddedSchemaRegistry.Start();
        await RegisterOrdersValueAsync(registry);

        using var host = Host(new LogCapture(), $$""" "Url": "{{registry.Url}}", "AutoRegisterSchemas": false, "UseLatestVersion": true, "RequiredSubjects": [ "orders-value", "orders-key", "payments-value" ] """);

        var error = Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.Multiple(() =>
        {
            Assert.That(error!.Failures.Count(), Is.EqualTo(2), string.Join(Environment.NewLine, error.Failures));
            Assert.That(error.Failures.First(), Does.Contain("'orders-key'").And.Contain(registry.Url).And.Contain("AutoRegisterSchemas"));
            Assert.That(error.Failures.Last(), Does.Contain("'payments-value'"));
            Assert.That(error.Message, Does.Not.Contain("'orders-value'"));
        });
    }

    [Test]
    public async Task HostStart_RequiredSubjectsPresent_StartsHealthy()
    {
        await using var registry = EmbeddedSchemaRegistry.Start();
        await RegisterOrdersValueAsync(registry);

        var logs = new LogCapture();
        using var host = Host(logs, $$""" "Url": "{{registry.Url}}", "AutoRegisterSchemas": false, "RequiredSubjects": [ "orders-value" ] """);

        await host.StartAsync();
        var health = await CheckAsync(host);
        await host.StopAsync();

        Assert.Multiple(() =>
        {
            Assert.That(health.Status, Is.EqualTo(HealthStatus.Healthy));
            Assert.That(logs.Entries.Single(e => e.Id == 4131).Message, Does.Contain(registry.Url).And.Contain("1"));
        });
    }

    private static async Task RegisterOrdersValueAsync(EmbeddedSchemaRegistry registry)
    {
        using var client = new Confluent.SchemaRegistry.CachedSchemaRegistryClient(new Confluent.SchemaRegistry.SchemaRegistryConfig { Url = registry.Url });
        await client.RegisterSchemaAsync("orders-value", new Confluent.SchemaRegistry.Schema(Order._SCHEMA.ToString(), Confluent.SchemaRegistry.SchemaType.Avro));
    }

    private static IHost Host(LogCapture logs, string registry)
    {
        var builder = Kit.NewHost($$"""{ "KafkaKit": { "BootstrapServers": "127.0.0.1:1", "SchemaRegistry": { {{registry}} } } }""");
        builder.Logging.AddProvider(logs);
        builder.Services.AddKafkaKit(builder.Configuration.GetSection("KafkaKit")).AddSchemaRegistry();
        return builder.Build();
    }

    private static async Task<HealthReportEntry> CheckAsync(IHost host)
    {
        var report = await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync(r => r.Name == HealthName);
        return report.Entries[HealthName];
    }

    /// <summary>Keeps every log entry (id, level, formatted message).</summary>
    private sealed class LogCapture : ILoggerProvider
    {
        public ConcurrentQueue<(int Id, LogLevel Level, string Message)> Entries { get; } = new();

        public ILogger CreateLogger(string categoryName) => new Logger(this);

        public void Dispose()
        {
        }

        private sealed class Logger(LogCapture owner) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                owner.Entries.Enqueue((eventId.Id, logLevel, formatter(state, exception)));
        }
    }
}
