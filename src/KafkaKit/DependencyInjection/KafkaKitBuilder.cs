using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Diagnostics;
using KafkaKit.Hosting;
using KafkaKit.Producing;
using KafkaKit.Sharing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace KafkaKit.DependencyInjection;

/// <summary>Registers KafkaKit producers and consumers; returned by <c>AddKafkaKit</c>.</summary>
public sealed class KafkaKitBuilder
{
    internal KafkaKitBuilder(IServiceCollection services, KafkaKitRegistry registry)
    {
        Services = services;
        Registry = registry;
    }

    /// <summary>Gets the service collection.</summary>
    public IServiceCollection Services { get; }

    internal KafkaKitRegistry Registry { get; }

    /// <summary>
    /// Registers a producer as a singleton <see cref="IKafkaProducer{TKey, TValue}"/>, keyed by <paramref name="name"/>;
    /// the first producer of a key/value type is also registered without a key. Its options are
    /// <c>KafkaKit:Producers:&lt;name&gt;</c> (defaults when absent), on top of the shared ones. It is built at first
    /// use and flushed and disposed with the service provider.
    /// </summary>
    /// <typeparam name="TKey">The message key type.</typeparam>
    /// <typeparam name="TValue">The message value type.</typeparam>
    /// <param name="name">The producer's name (its <c>client.id</c>).</param>
    /// <param name="configure">Optional: serializers, retry pipeline, delivery-failed handler.</param>
    /// <returns>This builder.</returns>
    /// <exception cref="ArgumentException"><paramref name="name"/> is null or empty.</exception>
    /// <exception cref="InvalidOperationException">A producer named <paramref name="name"/> is registered already.</exception>
    public KafkaKitBuilder AddProducer<TKey, TValue>(string name, Action<IServiceProvider, KafkaProducerBuilder<TKey, TValue>>? configure = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        Registry.AddProducer(name);
        Services.AddKeyedSingleton<IKafkaProducer<TKey, TValue>>(name, (sp, _) =>
        {
            var options = sp.GetRequiredService<IOptions<KafkaKitOptions>>().Value;
            var builder = new KafkaProducerBuilder<TKey, TValue>(name, options.Producers.TryGetValue(name, out var own) ? own : new KafkaProducerOptions())
                .SetShared(options)
                .SetLoggerFactory(sp.GetService<ILoggerFactory>() ?? NullLoggerFactory.Instance)
                .SetTimeProvider(sp.GetService<TimeProvider>() ?? TimeProvider.System);
            configure?.Invoke(sp, builder);
            var producer = builder.Build();
            sp.GetRequiredService<KafkaKitClients>().Add(KafkaClientHealth.For(producer));
            return producer;
        });
        Services.TryAddSingleton(sp => sp.GetRequiredKeyedService<IKafkaProducer<TKey, TValue>>(name));
        return this;
    }

    /// <summary>
    /// Registers a consumer run by a hosted service: it starts with the host (without delaying its start) and stops
    /// gracefully with it. Its options are <c>KafkaKit:Consumers:&lt;name&gt;</c>, on top of the shared ones. The handler
    /// is resolved from a new DI scope for every message (register it yourself to choose its lifetime; otherwise it is
    /// registered as scoped).
    /// </summary>
    /// <typeparam name="TKey">The message key type.</typeparam>
    /// <typeparam name="TValue">The message value type.</typeparam>
    /// <typeparam name="THandler">The message handler.</typeparam>
    /// <param name="name">The consumer's name (its <c>client.id</c> and its options key).</param>
    /// <param name="configure">Optional: deserializers, rebalance callbacks, retry pipeline.</param>
    /// <returns>This builder.</returns>
    /// <remarks>
    /// <para>
    /// Handler check at start: when the host starts, before the consumer is built, <typeparamref name="THandler"/> is
    /// resolved once from a new scope (its constructor and those of its dependencies run; <c>HandleAsync</c> is not
    /// called) and the scope is disposed. If it cannot be created, the host's <c>StartAsync</c> throws an
    /// <see cref="InvalidOperationException"/> naming the consumer, the handler and the service provider's reason (for
    /// example the missing service), in every environment, not only where <c>ValidateOnBuild</c> is on. This runs on the
    /// host's start path like the construction of any hosted service, so keep handler constructors free of I/O.
    /// </para>
    /// <para>
    /// At run time, a handler the service provider cannot create (it throws <see cref="InvalidOperationException"/>, for
    /// example a factory asking for a service that is not registered) is a configuration error: the consumer stops at
    /// once with that error, without retries and whatever <see cref="KafkaConsumerOptions.OnError"/> says, and the
    /// message's offset is not committed. Any other exception from a constructor counts as a failure of the message
    /// (retried, then <see cref="KafkaConsumerOptions.OnError"/>).
    /// </para>
    /// <para>
    /// When the consumer stops on an error by itself, <see cref="KafkaConsumerOptions.OnFault"/> decides what the
    /// application does: by default it stops, with exit code 1.
    /// </para>
    /// </remarks>
    /// <exception cref="ArgumentException"><paramref name="name"/> is null or empty.</exception>
    /// <exception cref="InvalidOperationException">A consumer named <paramref name="name"/> is registered already.</exception>
    public KafkaKitBuilder AddConsumer<TKey, TValue, THandler>(string name, Action<IServiceProvider, KafkaConsumerBuilder<TKey, TValue>>? configure = null)
        where THandler : class, IKafkaMessageHandler<TKey, TValue>
    {
        return AddHostedConsumer<TKey, TValue, THandler>(name, configure, (scopes, builder) =>
            builder.SetHandler((result, ct) => HandleAsync<TKey, TValue, THandler>(scopes, name, result, ct)));
    }

    /// <summary>
    /// Registers a consumer with a batch handler, run by a hosted service like <see cref="AddConsumer"/>: the handler
    /// receives batches of one partition in offset order (<see cref="KafkaConsumerOptions.Batch"/>: <c>MaxBatchSize</c>,
    /// <c>MaxBatchWait</c>) and is resolved from a new DI scope for every batch. Its options are
    /// <c>KafkaKit:Consumers:&lt;name&gt;</c>, on top of the shared ones; <see cref="KafkaConsumerOptions.Ordering"/> must
    /// stay <see cref="ConsumerOrdering.Partition"/>.
    /// </summary>
    /// <typeparam name="TKey">The message key type.</typeparam>
    /// <typeparam name="TValue">The message value type.</typeparam>
    /// <typeparam name="THandler">The batch handler.</typeparam>
    /// <param name="name">The consumer's name (its <c>client.id</c> and its options key).</param>
    /// <param name="configure">Optional: deserializers, rebalance callbacks, retry pipeline.</param>
    /// <returns>This builder.</returns>
    /// <remarks>
    /// The handler check at start, a handler that cannot be created at run time, and <see cref="KafkaConsumerOptions.OnFault"/>
    /// behave as with <see cref="AddConsumer"/>. Invalid batch options or an ordering other than
    /// <see cref="ConsumerOrdering.Partition"/> fail the host's start with an <see cref="Microsoft.Extensions.Options.OptionsValidationException"/> listing every problem.
    /// </remarks>
    /// <exception cref="ArgumentException"><paramref name="name"/> is null or empty.</exception>
    /// <exception cref="InvalidOperationException">A consumer named <paramref name="name"/> is registered already.</exception>
    public KafkaKitBuilder AddBatchConsumer<TKey, TValue, THandler>(string name, Action<IServiceProvider, KafkaConsumerBuilder<TKey, TValue>>? configure = null)
        where THandler : class, IKafkaBatchHandler<TKey, TValue>
    {
        return AddHostedConsumer<TKey, TValue, THandler>(name, configure, (scopes, builder) =>
            builder.SetBatchHandler((batch, ct) => HandleBatchAsync<TKey, TValue, THandler>(scopes, name, batch, ct)));
    }

    /// <summary>
    /// Registers an exactly-once consumer run by a hosted service, like <see cref="AddConsumer{TKey, TValue, THandler}"/>:
    /// what the handler produces through its <see cref="TransactionContext"/> is committed in one Kafka transaction with
    /// the consumed offsets (see <see cref="ConsumerTransactionOptions"/>). <c>KafkaKit:Consumers:&lt;name&gt;:Transactions:TransactionalIdPrefix</c>
    /// must be set (validated at start); the producer's <c>transactional.id</c> is <c>&lt;prefix&gt;-&lt;name&gt;</c>.
    /// The handler is resolved from a new DI scope for every message and checked at start as for <c>AddConsumer</c>.
    /// </summary>
    /// <typeparam name="TKey">The message key type.</typeparam>
    /// <typeparam name="TValue">The message value type.</typeparam>
    /// <typeparam name="THandler">The transactional message handler.</typeparam>
    /// <param name="name">The consumer's name (its <c>client.id</c>, its options key and the suffix of its transactional.id).</param>
    /// <param name="configure">Optional: deserializers, rebalance callbacks, retry pipeline.</param>
    /// <returns>This builder.</returns>
    /// <exception cref="ArgumentException"><paramref name="name"/> is null or empty.</exception>
    /// <exception cref="InvalidOperationException">A consumer named <paramref name="name"/> is registered already.</exception>
    public KafkaKitBuilder AddTransactionalConsumer<TKey, TValue, THandler>(string name, Action<IServiceProvider, KafkaConsumerBuilder<TKey, TValue>>? configure = null)
        where THandler : class, ITransactionalMessageHandler<TKey, TValue> =>
        AddHostedConsumer<TKey, TValue, THandler>(name, configure, (scopes, builder) =>
            builder.SetTransactionalHandler((result, transaction, ct) => InScopeAsync<THandler, (ConsumeResult<TKey, TValue> Result, TransactionContext Transaction)>(
                scopes, name, "handler", (result, transaction), result.TopicPartitionOffset, static (h, x, ct) => h.HandleAsync(x.Result, x.Transaction, ct), ct)));

    /// <summary>
    /// Registers a share consumer (a member of a KIP-932 share group; preview, see docs/share-groups.md) run by a hosted
    /// service: it starts with the host (the start returns once the member is subscribed) and stops gracefully with it
    /// (see <see cref="KafkaShareConsumer{TKey, TValue}.StopAsync"/>). Its options are
    /// <c>KafkaKit:ShareConsumers:&lt;name&gt;</c>, on top of the shared ones, validated at start with the other clients.
    /// The handler is resolved from a new DI scope for every record (registered as scoped unless you registered it) and
    /// checked once at start as for <see cref="AddConsumer{TKey, TValue, THandler}"/>. A handler the service provider
    /// cannot create at run time (it throws <see cref="InvalidOperationException"/>, e.g. a service not registered) is a
    /// configuration error: the share consumer releases that record and stops at once, as a consumer does. When the share
    /// consumer stops on an error by itself (that, a failed dead-letter produce, a fatal librdkafka error),
    /// <see cref="KafkaShareConsumerOptions.OnFault"/> decides what the application does: by default it stops, with exit code 1.
    /// </summary>
    /// <typeparam name="TKey">The record key type.</typeparam>
    /// <typeparam name="TValue">The record value type.</typeparam>
    /// <typeparam name="THandler">The record handler.</typeparam>
    /// <param name="name">The share consumer's name (its <c>client.id</c> and its options key).</param>
    /// <param name="configure">Optional: deserializers.</param>
    /// <returns>This builder.</returns>
    /// <exception cref="ArgumentException"><paramref name="name"/> is null or empty.</exception>
    /// <exception cref="InvalidOperationException">A share consumer named <paramref name="name"/> is registered already.</exception>
    [System.Diagnostics.CodeAnalysis.Experimental(KafkaShareConsumer.DiagnosticId)]
    public KafkaKitBuilder AddShareConsumer<TKey, TValue, THandler>(string name, Action<IServiceProvider, KafkaShareConsumerBuilder<TKey, TValue>>? configure = null)
        where THandler : class, IKafkaMessageHandler<TKey, TValue>
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        Registry.AddShareConsumer(name);
        Services.TryAddScoped<THandler>();
        Services.AddSingleton<IHostedService>(sp =>
        {
            var scopes = sp.GetRequiredService<IServiceScopeFactory>();
            var loggerFactory = sp.GetService<ILoggerFactory>() ?? NullLoggerFactory.Instance;
            var logger = loggerFactory.CreateLogger("KafkaKit.Hosting");
            return new KafkaShareConsumerService<TKey, TValue>(
                name,
                () => CheckHandlerAsync<THandler>(scopes, name, logger),
                () =>
                {
                    var options = sp.GetRequiredService<IOptions<KafkaKitOptions>>().Value;
                    var builder = new KafkaShareConsumerBuilder<TKey, TValue>(name, options.ShareConsumers.TryGetValue(name, out var own) ? own : new KafkaShareConsumerOptions())
                        .SetShared(options)
                        .SetLoggerFactory(loggerFactory)
                        .SetHandler((result, ct) => InScopeAsync<THandler, ConsumeResult<TKey, TValue>>(
                            scopes, name, "handler", result, result.TopicPartitionOffset, static (h, r, ct) => h.HandleAsync(r, ct), ct, ShareHandlerUnavailable));
                    configure?.Invoke(sp, builder);
                    var consumer = builder.Build();
                    sp.GetRequiredService<KafkaKitClients>().Add(KafkaClientHealth.For(consumer));
                    return consumer;
                },
                sp.GetService<IHostApplicationLifetime>(),
                logger);
        });
        return this;
    }

    private KafkaKitBuilder AddHostedConsumer<TKey, TValue, THandler>(
        string name,
        Action<IServiceProvider, KafkaConsumerBuilder<TKey, TValue>>? configure,
        Action<IServiceScopeFactory, KafkaConsumerBuilder<TKey, TValue>> setHandler)
        where THandler : class
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        Registry.AddConsumer(name);
        Services.TryAddScoped<THandler>();
        Services.AddSingleton<IHostedService>(sp =>
        {
            var scopes = sp.GetRequiredService<IServiceScopeFactory>();
            var loggerFactory = sp.GetService<ILoggerFactory>() ?? NullLoggerFactory.Instance;
            var logger = loggerFactory.CreateLogger("KafkaKit.Hosting");
            return new KafkaConsumerService<TKey, TValue>(
                name,
                () => CheckHandlerAsync<THandler>(scopes, name, logger),
                () =>
                {
                    var options = sp.GetRequiredService<IOptions<KafkaKitOptions>>().Value;
                    var builder = new KafkaConsumerBuilder<TKey, TValue>(name, options.Consumers.TryGetValue(name, out var own) ? own : new KafkaConsumerOptions())
                        .SetShared(options)
                        .SetLoggerFactory(loggerFactory)
                        .SetTimeProvider(sp.GetService<TimeProvider>() ?? TimeProvider.System);
                    setHandler(scopes, builder);
                    configure?.Invoke(sp, builder);
                    var consumer = builder.Build();
                    sp.GetRequiredService<KafkaKitClients>().Add(KafkaClientHealth.For(consumer));
                    return consumer;
                },
                sp.GetService<IHostApplicationLifetime>(),
                logger);
        });
        return this;
    }

    /// <summary>Creates the handler once from a new scope, to fail the host's start when it cannot be created.</summary>
    private static async ValueTask CheckHandlerAsync<THandler>(IServiceScopeFactory scopes, string name, ILogger logger)
        where THandler : class
    {
        var scope = scopes.CreateAsyncScope();
        await using (scope.ConfigureAwait(false))
        {
            try
            {
                _ = scope.ServiceProvider.GetRequiredService<THandler>();
            }
            catch (Exception e) when (e is not ObjectDisposedException)
            {
                throw new HandlerUnavailableException(
                    $"Consumer '{name}' cannot start: its handler {HandlerName<THandler>()} cannot be created from the service provider. {e.Message} "
                    + "Register the missing service (the handler is created once when the host starts, so that this is found before the first message).",
                    e);
            }
        }

        HostingLog.HandlerChecked(logger, name, HandlerName<THandler>());
    }

    /// <summary>Handles one message with a handler resolved from a new scope (a thread-pool thread).</summary>
    private static ValueTask HandleAsync<TKey, TValue, THandler>(IServiceScopeFactory scopes, string name, ConsumeResult<TKey, TValue> result, CancellationToken cancellationToken)
        where THandler : class, IKafkaMessageHandler<TKey, TValue> =>
        InScopeAsync<THandler, ConsumeResult<TKey, TValue>>(scopes, name, "handler", result, result.TopicPartitionOffset, static (h, r, ct) => h.HandleAsync(r, ct), cancellationToken);

    /// <summary>Handles one batch with a handler resolved from a new scope (a thread-pool thread).</summary>
    private static ValueTask HandleBatchAsync<TKey, TValue, THandler>(IServiceScopeFactory scopes, string name, IReadOnlyList<ConsumeResult<TKey, TValue>> batch, CancellationToken cancellationToken)
        where THandler : class, IKafkaBatchHandler<TKey, TValue> =>
        InScopeAsync<THandler, IReadOnlyList<ConsumeResult<TKey, TValue>>>(scopes, name, "batch handler", batch, batch[0].TopicPartitionOffset, static (h, b, ct) => h.HandleAsync(b, ct), cancellationToken);

    /// <summary>Resolves the handler from a new scope and runs <paramref name="handle"/> in it; a handler that cannot be created is a <see cref="HandlerUnavailableException"/> whose message ends with <c>consequence</c> (what the consumer does about it; the consumer's stop when null).</summary>
    private static async ValueTask InScopeAsync<THandler, TInput>(
        IServiceScopeFactory scopes, string name, string kind, TInput input, TopicPartitionOffset first, Func<THandler, TInput, CancellationToken, ValueTask> handle, CancellationToken cancellationToken, string? consequence = null)
        where THandler : class
    {
        var scope = scopes.CreateAsyncScope();
        await using (scope.ConfigureAwait(false))
        {
            THandler handler;
            try
            {
                handler = scope.ServiceProvider.GetRequiredService<THandler>();
            }
            catch (InvalidOperationException e) when (e is not ObjectDisposedException)
            {
                throw new HandlerUnavailableException(
                    $"Consumer '{name}' cannot create its {kind} {HandlerName<THandler>()} for {first.Topic} [{first.Partition.Value}] @{first.Offset.Value}. {e.Message} "
                    + (consequence ?? $"This is a configuration error, so the consumer stops at once: no retries, OnError does not apply, and offset {first.Offset.Value} is not committed.")
                    + " Register the missing service.",
                    e);
            }

            await handle(handler, input, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>What a share consumer does when it cannot create its handler at run time.</summary>
    private const string ShareHandlerUnavailable = "This is a configuration error, so the share consumer stops at once: the record is released, not failed, and OnFault applies.";

    private static string HandlerName<THandler>() => typeof(THandler).FullName ?? typeof(THandler).Name;
}
