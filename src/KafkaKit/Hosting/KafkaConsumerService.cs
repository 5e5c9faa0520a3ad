using KafkaKit.Consuming;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace KafkaKit.Hosting;

/// <summary>
/// Runs one <see cref="KafkaConsumer{TKey, TValue}"/> for the host's lifetime. Its start checks that the handler can be
/// created, then returns at once (the consumer polls on its own thread, joining the group in the background); its stop
/// is the consumer's graceful stop, bounded by the host's shutdown timeout. When the consumer stops on an error by
/// itself, <see cref="KafkaConsumerOptions.OnFault"/> decides whether the application stops too.
/// </summary>
/// <param name="name">The consumer's name.</param>
/// <param name="checkHandler">Creates the handler once and disposes it; throws when it cannot be created.</param>
/// <param name="create">Builds the consumer (not started).</param>
/// <param name="lifetime">The application to stop on a fault; <see langword="null"/> outside a host.</param>
/// <param name="logger">The hosting logger.</param>
internal sealed class KafkaConsumerService<TKey, TValue>(
    string name,
    Func<ValueTask> checkHandler,
    Func<KafkaConsumer<TKey, TValue>> create,
    IHostApplicationLifetime? lifetime,
    ILogger logger) : IHostedService
{
    private KafkaConsumer<TKey, TValue>? _consumer;
    private volatile bool _stopping;

    public string Name { get; } = name;

    public KafkaConsumer<TKey, TValue>? Consumer => _consumer;

    /// <summary>Gets the task that acts on the consumer's fault (completes when the consumer has stopped), for tests.</summary>
    internal Task Watching { get; private set; } = Task.CompletedTask;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        // Fails the host's start when a service the handler needs is missing, in every environment (ValidateOnBuild is
        // on only in Development): a configuration error found here instead of at the first message.
        await checkHandler().ConfigureAwait(false);
        var consumer = create();
        _consumer = consumer;
        await consumer.StartAsync(cancellationToken).ConfigureAwait(false);

        // Acts on OnFault once the consumer has stopped by itself (after its own stop sequence), not when the host stops it.
        Watching = HostedFault.WatchAsync(Name, consumer.WhenStoppedAsync(), () => consumer.State == KafkaConsumerState.Faulted, () => _stopping, consumer.Options.OnFault, lifetime, logger);
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        _stopping = true;
        return _consumer?.StopAsync(cancellationToken) ?? Task.CompletedTask;
    }
}
