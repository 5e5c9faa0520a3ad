using KafkaKit.Consuming;
using KafkaKit.Sharing;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace KafkaKit.Hosting;

/// <summary>
/// Runs one <see cref="KafkaShareConsumer{TKey, TValue}"/> for the host's lifetime: its start checks that the handler can
/// be created, builds the share consumer and starts it (returning once it is subscribed); its stop is the share
/// consumer's graceful stop, bounded by the host's shutdown timeout. When the share consumer stops on an error by itself,
/// <see cref="KafkaShareConsumerOptions.OnFault"/> decides whether the application stops too, as for a consumer.
/// </summary>
/// <param name="name">The share consumer's name.</param>
/// <param name="checkHandler">Creates the handler once and disposes it; throws when it cannot be created.</param>
/// <param name="create">Builds the share consumer (not started).</param>
/// <param name="lifetime">The application to stop on a fault; <see langword="null"/> outside a host.</param>
/// <param name="logger">The hosting logger.</param>
internal sealed class KafkaShareConsumerService<TKey, TValue>(
    string name,
    Func<ValueTask> checkHandler,
    Func<KafkaShareConsumer<TKey, TValue>> create,
    IHostApplicationLifetime? lifetime,
    ILogger logger) : IHostedService, IAsyncDisposable
{
    private KafkaShareConsumer<TKey, TValue>? _consumer;
    private volatile bool _stopping;

    public KafkaShareConsumer<TKey, TValue>? Consumer => _consumer;

    /// <summary>Gets the task that acts on the share consumer's fault (completes when it has stopped), for tests.</summary>
    internal Task Watching { get; private set; } = Task.CompletedTask;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await checkHandler().ConfigureAwait(false);
        var consumer = create();
        _consumer = consumer;
        await consumer.StartAsync(cancellationToken).ConfigureAwait(false);

        // Acts on OnFault once the consumer has stopped by itself (after its own stop sequence), not when the host stops it.
        Watching = HostedFault.WatchAsync(name, consumer.WhenStoppedAsync(), () => consumer.State == KafkaConsumerState.Faulted, () => _stopping, consumer.Options.OnFault, lifetime, logger);
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        _stopping = true;
        return _consumer?.StopAsync(cancellationToken) ?? Task.CompletedTask;
    }

    public ValueTask DisposeAsync() => _consumer?.DisposeAsync() ?? ValueTask.CompletedTask;
}
