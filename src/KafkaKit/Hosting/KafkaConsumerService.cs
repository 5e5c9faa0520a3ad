using KafkaKit.Consuming;
using Microsoft.Extensions.Hosting;

namespace KafkaKit.Hosting;

/// <summary>
/// Runs one <see cref="KafkaConsumer{TKey, TValue}"/> for the host's lifetime. Its start returns at once (the consumer
/// polls on its own thread, joining the group in the background); its stop is the consumer's graceful stop, bounded by
/// the host's shutdown timeout.
/// </summary>
internal sealed class KafkaConsumerService<TKey, TValue>(string name, Func<KafkaConsumer<TKey, TValue>> create) : IHostedService
{
    private KafkaConsumer<TKey, TValue>? _consumer;

    public string Name { get; } = name;

    public KafkaConsumer<TKey, TValue>? Consumer => _consumer;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _consumer = create();
        return _consumer.StartAsync(cancellationToken);
    }

    public Task StopAsync(CancellationToken cancellationToken) => _consumer?.StopAsync(cancellationToken) ?? Task.CompletedTask;
}
