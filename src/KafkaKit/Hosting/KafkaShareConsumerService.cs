using KafkaKit.Sharing;
using Microsoft.Extensions.Hosting;

namespace KafkaKit.Hosting;

/// <summary>
/// Runs one <see cref="KafkaShareConsumer{TKey, TValue}"/> for the host's lifetime: its start checks that the handler can
/// be created, builds the share consumer and starts it (returning once it is subscribed); its stop is the share
/// consumer's graceful stop, bounded by the host's shutdown timeout.
/// </summary>
/// <param name="checkHandler">Creates the handler once and disposes it; throws when it cannot be created.</param>
/// <param name="create">Builds the share consumer (not started).</param>
internal sealed class KafkaShareConsumerService<TKey, TValue>(Func<ValueTask> checkHandler, Func<KafkaShareConsumer<TKey, TValue>> create) : IHostedService, IAsyncDisposable
{
    private KafkaShareConsumer<TKey, TValue>? _consumer;

    public KafkaShareConsumer<TKey, TValue>? Consumer => _consumer;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await checkHandler().ConfigureAwait(false);
        _consumer = create();
        await _consumer.StartAsync(cancellationToken).ConfigureAwait(false);
    }

    public Task StopAsync(CancellationToken cancellationToken) => _consumer?.StopAsync(cancellationToken) ?? Task.CompletedTask;

    public ValueTask DisposeAsync() => _consumer?.DisposeAsync() ?? ValueTask.CompletedTask;
}
