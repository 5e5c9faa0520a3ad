using Confluent.SchemaRegistry;
using KafkaKit.DependencyInjection;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace KafkaKit.SchemaRegistry;

/// <summary>Registers the Schema Registry client KafkaKit's Avro and JSON Schema serdes use.</summary>
public static partial class SchemaRegistryKafkaKitBuilderExtensions
{
    /// <summary>The configuration section of the registry settings.</summary>
    public const string SectionName = "KafkaKit:SchemaRegistry";

    /// <summary>
    /// Registers <see cref="SchemaRegistryOptions"/> bound from <c>KafkaKit:SchemaRegistry</c> of the application's
    /// <c>IConfiguration</c> (then <paramref name="configure"/>), validated when the host starts (every problem listed
    /// in one <see cref="OptionsValidationException"/>), and a singleton <see cref="ISchemaRegistryClient"/> (Confluent's
    /// <see cref="CachedSchemaRegistryClient"/>: schemas and ids are cached, each looked up once) unless one is
    /// registered already. Producers and consumers use it through <c>UseAvro(sp)</c> / <c>UseJsonSchema(sp)</c> (and
    /// <c>UseAvroKey(sp)</c> / <c>UseJsonSchemaKey(sp)</c> for keys).
    /// </summary>
    /// <remarks>
    /// <para>
    /// Start check: when the host starts, before any hosted service starts (<see cref="IHostedLifecycleService.StartingAsync"/>),
    /// the registry is asked once (<c>GET /config</c>, then, with <see cref="SchemaRegistryOptions.AutoRegisterSchemas"/>
    /// off, <c>GET /subjects/{subject}/versions</c> for each of <see cref="SchemaRegistryOptions.RequiredSubjects"/>), each
    /// request bounded by <see cref="SchemaRegistryOptions.RequestTimeout"/> or 10 s, whichever is shorter.
    /// Refused credentials (401/403) and missing required subjects fail the start with one
    /// <see cref="OptionsValidationException"/> listing every problem (the URL without credentials, the subject, what to do).
    /// An unreachable registry (connection refused, timeout, 5xx) does not: it is logged as a warning (event 4130) and
    /// the health check <c>kafkakit-schema-registry</c> (tag <c>ready</c>, added here) reports Degraded until the registry
    /// answers (it asks again, 2 s at most, while Degraded), because a registry that is down at deploy time is usually
    /// back a minute later and every serde call retries it (producers within <c>MaxBlock</c>, consumers by pausing).
    /// </para>
    /// </remarks>
    /// <param name="builder">The KafkaKit builder.</param>
    /// <param name="configure">Optional: changes after binding (e.g. the URL of an embedded registry in tests).</param>
    /// <returns>The builder.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="builder"/> is null.</exception>
    public static KafkaKitBuilder AddSchemaRegistry(this KafkaKitBuilder builder, Action<SchemaRegistryOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var options = builder.Services.AddOptions<SchemaRegistryOptions>().BindConfiguration(SectionName);
        if (configure is not null)
        {
            options.Configure(configure);
        }

        options.ValidateOnStart();
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<SchemaRegistryOptions>, Validator>());
        if (!builder.Services.Any(d => d.ServiceType == typeof(SchemaRegistryStartCheck)))
        {
            builder.Services.AddSingleton(sp => new SchemaRegistryStartCheck(
                sp.GetRequiredService<ISchemaRegistryClient>(),
                sp.GetRequiredService<IOptions<SchemaRegistryOptions>>(),
                (sp.GetService<ILoggerFactory>() ?? NullLoggerFactory.Instance).CreateLogger("KafkaKit.SchemaRegistry"),
                sp.GetService<TimeProvider>() ?? TimeProvider.System));
            builder.Services.AddSingleton<IHostedService>(sp => sp.GetRequiredService<SchemaRegistryStartCheck>());
            builder.Services.AddHealthChecks().Add(new HealthCheckRegistration(
                "kafkakit-schema-registry", sp => sp.GetRequiredService<SchemaRegistryStartCheck>(), failureStatus: null, ["ready"]));
        }

        builder.Services.TryAddSingleton<ISchemaRegistryClient>(sp =>
        {
            var registry = sp.GetRequiredService<IOptions<SchemaRegistryOptions>>().Value;
            var logger = (sp.GetService<ILoggerFactory>() ?? NullLoggerFactory.Instance).CreateLogger("KafkaKit.SchemaRegistry");
            ClientCreated(logger, registry.ToString());
            return new CachedSchemaRegistryClient(registry.ToClientConfig());
        });
        return builder;
    }

    [LoggerMessage(4120, LogLevel.Information, "Schema registry client: {Settings}")]
    private static partial void ClientCreated(ILogger logger, string settings);

    /// <summary>Reports every problem at once.</summary>
    private sealed class Validator : IValidateOptions<SchemaRegistryOptions>
    {
        public ValidateOptionsResult Validate(string? name, SchemaRegistryOptions options)
        {
            var problems = options.Validate();
            return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
        }
    }
}
