using KafkaKit.Consuming;
using KafkaKit.Hosting;
using KafkaKit.Producing;
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
    /// <exception cref="ArgumentException"><paramref name="name"/> is null or empty.</exception>
    /// <exception cref="InvalidOperationException">A consumer named <paramref name="name"/> is registered already.</exception>
    public KafkaKitBuilder AddConsumer<TKey, TValue, THandler>(string name, Action<IServiceProvider, KafkaConsumerBuilder<TKey, TValue>>? configure = null)
        where THandler : class, IKafkaMessageHandler<TKey, TValue>
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        Registry.AddConsumer(name);
        Services.TryAddScoped<THandler>();
        Services.AddSingleton<IHostedService>(sp => new KafkaConsumerService<TKey, TValue>(name, () =>
        {
            var options = sp.GetRequiredService<IOptions<KafkaKitOptions>>().Value;
            var scopes = sp.GetRequiredService<IServiceScopeFactory>();
            var builder = new KafkaConsumerBuilder<TKey, TValue>(name, options.Consumers.TryGetValue(name, out var own) ? own : new KafkaConsumerOptions())
                .SetShared(options)
                .SetLoggerFactory(sp.GetService<ILoggerFactory>() ?? NullLoggerFactory.Instance)
                .SetHandler(async (result, ct) =>
                {
                    var scope = scopes.CreateAsyncScope();
                    await using (scope.ConfigureAwait(false))
                    {
                        await scope.ServiceProvider.GetRequiredService<THandler>().HandleAsync(result, ct).ConfigureAwait(false);
                    }
                });
            configure?.Invoke(sp, builder);
            var consumer = builder.Build();
            sp.GetRequiredService<KafkaKitClients>().Add(KafkaClientHealth.For(consumer));
            return consumer;
        }));
        return this;
    }
}
