using System.Text.Encodings.Web;
using System.Text.Json;
using KafkaKit.Consuming;
using KafkaKit.Testing;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;

namespace KafkaKit.Samples.Notifications;

/// <summary>
/// The notifications sample as one object: its web application and, when no cluster is configured, the embedded Kafka
/// cluster it runs on. <c>Program</c> runs it; the tests start it on a free port.
/// </summary>
internal sealed class NotificationsApp : IAsyncDisposable
{
    /// <summary>The KafkaKit producer's name (its options: <c>KafkaKit:Producers:notifications</c>).</summary>
    public const string ProducerName = "notifications";

    /// <summary>The KafkaKit consumer's name (its options: <c>KafkaKit:Consumers:notifications-web</c>).</summary>
    public const string ConsumerName = "notifications-web";

    /// <summary>The address used when neither <c>--urls</c> nor <c>ASPNETCORE_URLS</c>/<c>HTTP_PORTS</c>/Kestrel endpoints are configured.</summary>
    public const string DefaultUrl = "http://127.0.0.1:5080";

    /// <summary>The brokers of the embedded cluster.</summary>
    public const int EmbeddedBrokers = 3;

    public const string Usage = """
        Usage: dotnet run --project samples/KafkaKit.Samples.Notifications [-- [--role all|api|worker] [--urls http://127.0.0.1:5080] [--KafkaKit:BootstrapServers host:port]]
          --role     all (default): API + worker in one process; api: POST /notifications only; worker: consumer, streams, page
          --urls     where to listen (default http://127.0.0.1:5080)
          KafkaKit__BootstrapServers=host:port (or --KafkaKit:BootstrapServers host:port, or KafkaKit:Client:bootstrap.servers)
          uses a real cluster; without it an embedded cluster (in memory) runs in this process.
        """;

    private static readonly JsonSerializerOptions HealthJson = new(JsonSerializerDefaults.Web) { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Histogram boundaries in seconds (the OpenTelemetry messaging conventions' recommendation).</summary>
    private static readonly double[] SecondsBuckets = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

    private int _state; // 0 created, 1 started, 2 stopped

    private NotificationsApp(WebApplication app, NotificationsRole role, EmbeddedKafkaCluster? cluster)
    {
        App = app;
        Role = role;
        EmbeddedCluster = cluster;
    }

    public WebApplication App { get; }

    public NotificationsRole Role { get; }

    /// <summary>Gets the embedded cluster this process started, or null when it uses a configured one.</summary>
    public EmbeddedKafkaCluster? EmbeddedCluster { get; }

    /// <summary>Gets the first address the server listens on (after <see cref="StartAsync"/>), for example <c>http://127.0.0.1:5080</c>.</summary>
    public Uri BaseAddress => new(App.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());

    /// <summary>Builds the app from command-line arguments (and appsettings.json, environment variables).</summary>
    /// <param name="args">The arguments: <c>--role</c>, <c>--urls</c>, and any configuration key as <c>--Section:Key value</c>.</param>
    /// <param name="configure">Lets tests adjust the builder (logging, services) before it is built.</param>
    /// <returns>The app, not started.</returns>
    /// <exception cref="UsageException">An argument is wrong.</exception>
    public static NotificationsApp Create(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        // The content root is the build output (appsettings.json and wwwroot are copied there), so the app finds its
        // files whichever directory it is started from.
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
        var role = ParseRole(builder.Configuration["role"]);
        configure?.Invoke(builder);

        var settings = new NotificationsOptions();
        builder.Configuration.GetSection("Notifications").Bind(settings);
        var problems = settings.Validate().ToList();
        if (problems.Count > 0)
        {
            throw new UsageException(string.Join(Environment.NewLine, problems));
        }

        if (string.IsNullOrEmpty(builder.Configuration["urls"]) && string.IsNullOrEmpty(builder.Configuration["http_ports"])
            && string.IsNullOrEmpty(builder.Configuration["https_ports"]) && !builder.Configuration.GetSection("Kestrel:Endpoints").Exists())
        {
            builder.WebHost.UseUrls(DefaultUrl);
        }

        // Bootstrap servers may be set as KafkaKit:BootstrapServers or among the shared librdkafka settings.
        string? Servers() => string.IsNullOrWhiteSpace(builder.Configuration["KafkaKit:BootstrapServers"])
            ? builder.Configuration["KafkaKit:Client:bootstrap.servers"]
            : builder.Configuration["KafkaKit:BootstrapServers"];
        EmbeddedKafkaCluster? cluster = null;
        if (string.IsNullOrWhiteSpace(Servers()))
        {
            cluster = EmbeddedKafkaCluster.Start(brokers: EmbeddedBrokers);
            try
            {
                cluster.CreateTopic(settings.Topic, settings.Partitions, replicationFactor: EmbeddedBrokers);
            }
            catch
            {
                cluster.Dispose();
                throw;
            }

            builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["KafkaKit:BootstrapServers"] = cluster.BootstrapServers });
        }

        try
        {
            ConfigureServices(builder, role, settings, embedded: cluster is not null);
            var app = builder.Build();
            ConfigurePipeline(app, role, settings);
            var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("KafkaKit.Samples.Notifications");
            if (cluster is not null)
            {
                Log.EmbeddedClusterStarted(logger, EmbeddedBrokers, cluster.BootstrapServers, settings.Topic, settings.Partitions);
            }

            Log.Running(logger, role.ToString().ToLowerInvariant(), Servers()!);
            return new NotificationsApp(app, role, cluster);
        }
        catch
        {
            cluster?.Dispose();
            throw;
        }
    }

    /// <summary>Starts the app: options are validated, the producer is built, the consumer starts joining its group, the server listens.</summary>
    /// <param name="cancellationToken">Ends the start.</param>
    /// <returns>A task that completes when the server listens.</returns>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        _state = 1;
        await App.StartAsync(cancellationToken);
    }

    /// <summary>Runs until Ctrl+C / SIGTERM, then stops gracefully.</summary>
    /// <returns>A task that completes when the app has stopped.</returns>
    public async Task RunAsync()
    {
        await StartAsync();
        await App.WaitForShutdownAsync(); // stops the host once shutdown is requested
        _state = 2;
    }

    public async ValueTask DisposeAsync()
    {
        if (_state == 1)
        {
            _state = 2;
            await App.StopAsync();
        }

        await App.DisposeAsync(); // flushes and disposes the producer
        if (EmbeddedCluster is not null)
        {
            await EmbeddedCluster.DisposeAsync();
        }
    }

    internal static NotificationsRole ParseRole(string? role) => role?.Trim().ToLowerInvariant() switch
    {
        null or "" or "all" => NotificationsRole.All,
        "api" => NotificationsRole.Api,
        "worker" => NotificationsRole.Worker,
        _ => throw new UsageException($"Unknown --role '{role}': use all, api or worker.{Environment.NewLine}{Usage}"),
    };

    private static void ConfigureServices(WebApplicationBuilder builder, NotificationsRole role, NotificationsOptions settings, bool embedded)
    {
        var services = builder.Services;
        services.AddOptions<NotificationsOptions>().Bind(builder.Configuration.GetSection("Notifications"));
        services.AddSingleton(TimeProvider.System);
        services.AddSingleton(UserDirectory.Seeded);
        services.AddSingleton(new HostRole(role));
        services.AddProblemDetails(o => o.CustomizeProblemDetails = context =>
        {
            // Minimal APIs answer an unreadable body with an empty 400: say what was expected.
            if (context.ProblemDetails is not HttpValidationProblemDetails && context.ProblemDetails.Status == StatusCodes.Status400BadRequest
                && context.ProblemDetails.Detail is null && HttpMethods.IsPost(context.HttpContext.Request.Method)
                && context.HttpContext.Request.Path.Equals("/notifications", StringComparison.OrdinalIgnoreCase))
            {
                context.ProblemDetails.Detail = "The body must be a JSON object { \"senderId\": \"alice\", \"recipientId\": \"bob\", \"message\": \"...\" }.";
            }
        });
        services.AddCors();
        services.ConfigureHttpJsonOptions(o => o.SerializerOptions.WriteIndented = false);
        services.AddHealthChecks().AddKafkaKit();
        services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService("kafkakit-notifications"))
            .WithMetrics(metrics =>
            {
                metrics.AddMeter("KafkaKit").AddPrometheusExporter();

                // The exporter's default buckets (0 to 10,000) suit milliseconds; these histograms are in seconds: the
                // OpenTelemetry messaging conventions' boundaries instead.
                foreach (var histogram in new[] { "messaging.process.duration", "kafkakit.producer.backpressure.wait" })
                {
                    metrics.AddView(histogram, new ExplicitBucketHistogramConfiguration { Boundaries = SecondsBuckets });
                }
            });

        if (!embedded && settings.CreateTopic)
        {
            services.AddHostedService<TopicInitializer>(); // before the consumer, so it subscribes to an existing topic
        }

        var kafka = services.AddKafkaKit(builder.Configuration.GetSection("KafkaKit"));
        if (role.HasFlag(NotificationsRole.Api))
        {
            kafka.AddProducer<string, Notification>(ProducerName);
            services.AddHostedService<ProducerWarmup>();
        }

        if (role.HasFlag(NotificationsRole.Worker))
        {
            services.AddSingleton<NotificationHub>();
            kafka.AddConsumer<string, Notification, NotificationDeliveryHandler>(ConsumerName);
        }

        // The consumer reads Notifications:Topic unless its options name topics (also in the api role, where the
        // configured consumer is validated though it does not run).
        services.PostConfigure<KafkaKitOptions>(o =>
        {
            if (!o.Consumers.TryGetValue(ConsumerName, out var consumer))
            {
                o.Consumers[ConsumerName] = consumer = new KafkaConsumerOptions { GroupId = ConsumerName };
            }

            if (consumer.Topics.Count == 0)
            {
                consumer.Topics.Add(settings.Topic);
            }

            if (embedded)
            {
                // The embedded cluster completes a rebalance only after session.timeout.ms - 1 s: keep it short.
                consumer.Config["session.timeout.ms"] = "6000";
                consumer.Config["heartbeat.interval.ms"] = "500";
            }
        });
    }

    private static void ConfigurePipeline(WebApplication app, NotificationsRole role, NotificationsOptions settings)
    {
        app.UseExceptionHandler();
        app.UseStatusCodePages(); // empty error responses (malformed JSON, unknown routes) get a problem-details body
        if (role.HasFlag(NotificationsRole.Api) && settings.AllowedOrigins.Count > 0)
        {
            app.UseCors(cors => cors.WithOrigins([.. settings.AllowedOrigins]).WithMethods("POST").WithHeaders("Content-Type").WithExposedHeaders("Location", "Retry-After"));
        }

        if (role.HasFlag(NotificationsRole.Worker))
        {
            app.UseDefaultFiles();
            app.UseStaticFiles();
            app.UseWebSockets(new WebSocketOptions { KeepAliveInterval = settings.HeartbeatInterval });
            app.MapWorkerEndpoints();
        }
        else
        {
            app.MapGet("/", () => TypedResults.Text("KafkaKit notifications sample, role api: POST /notifications, GET /users, GET /health. The page is served by the worker role.\n"));
        }

        if (role.HasFlag(NotificationsRole.Api))
        {
            app.MapNotificationsApi();
        }

        app.MapGet("/users", (UserDirectory users) => TypedResults.Ok(users.All)).WithName("Users");
        app.MapHealthChecks("/health", new HealthCheckOptions { ResponseWriter = WriteHealthAsync });
        app.MapPrometheusScrapingEndpoint(); // GET /metrics: the KafkaKit meter in Prometheus text format
    }

    private static Task WriteHealthAsync(HttpContext http, HealthReport report)
    {
        http.Response.ContentType = "application/json";
        return JsonSerializer.SerializeAsync(
            http.Response.Body,
            new
            {
                status = report.Status.ToString(),
                entries = report.Entries.ToDictionary(
                    e => e.Key,
                    e => new { status = e.Value.Status.ToString(), description = e.Value.Description, data = e.Value.Data }),
            },
            HealthJson,
            http.RequestAborted);
    }
}
