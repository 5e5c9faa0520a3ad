using System.Diagnostics;
using System.Globalization;
using Confluent.Kafka;
using KafkaKit.Producing;
using Microsoft.Extensions.Hosting;

namespace KafkaKit.Samples.Quickstart;

/// <summary>Produces the messages once the consumer group has its assignment, waits for them to arrive, prints the result and stops the host.</summary>
internal sealed class QuickstartRunner(
    IKafkaProducer<string, string> producer,
    QuickstartTally tally,
    QuickstartTopic topic,
    QuickstartSettings settings,
    IHostApplicationLifetime lifetime) : BackgroundService
{
    private const int Keys = 1_000;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await RunAsync(stoppingToken);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            await Console.Out.WriteLineAsync("Interrupted.");
        }
        catch (Exception e)
        {
            await Console.Error.WriteLineAsync($"Quickstart failed: {e}");
        }
        finally
        {
            lifetime.StopApplication();
        }
    }

    private async Task RunAsync(CancellationToken stoppingToken)
    {
        // Let the group form before producing, so no rebalance moves partitions mid-run.
        var formed = Stopwatch.StartNew();
        while (!(tally.Owned.Count == 2 && tally.Owned.Values.All(n => n > 0) && tally.Owned.Values.Sum() == settings.Partitions)
            && formed.Elapsed < TimeSpan.FromSeconds(60))
        {
            await Task.Delay(50, stoppingToken);
        }

        await Console.Out.WriteLineAsync($"Consumer group formed in {formed.Elapsed.TotalSeconds:F1} s: {string.Join(", ", tally.Owned.OrderBy(o => o.Key).Select(o => $"{o.Key} owns {o.Value} partitions"))}.");
        await Console.Out.WriteLineAsync($"Producing {settings.Messages:N0} messages to '{topic.Name}' ({settings.Partitions} partitions, {Keys} keys)...");
        var sequences = new int[Keys];
        var clock = Stopwatch.StartNew();
        for (var id = 0; id < settings.Messages; id++)
        {
            var key = id % Keys;
            var value = string.Create(CultureInfo.InvariantCulture, $"{id}:{sequences[key]++}");
            await producer.EnqueueAsync(topic.Name, new Message<string, string> { Key = "key-" + key.ToString(CultureInfo.InvariantCulture), Value = value }, cancellationToken: stoppingToken);
        }

        var undelivered = await producer.FlushAsync(stoppingToken);
        var produceTime = clock.Elapsed;
        await Console.Out.WriteLineAsync($"Produced {settings.Messages - undelivered:N0} messages in {produceTime.TotalSeconds:F2} s ({(settings.Messages - undelivered) / produceTime.TotalSeconds:N0} msg/s); undelivered {undelivered}.");

        var timeout = TimeSpan.FromSeconds(60 + (settings.Messages / 5_000));
        try
        {
            await tally.AllArrived.Task.WaitAsync(timeout, stoppingToken);
        }
        catch (TimeoutException)
        {
            await Console.Out.WriteLineAsync($"Timed out after {timeout.TotalSeconds:F0} s waiting for the consumers.");
        }

        var total = clock.Elapsed;
        await Console.Out.WriteLineAsync($"Consumed {tally.Distinct:N0} of {settings.Messages:N0} messages in {total.TotalSeconds:F2} s end to end ({tally.Distinct / total.TotalSeconds:N0} msg/s); duplicates {tally.Duplicates}; out of order {tally.OutOfOrder}.");
        var ok = undelivered == 0 && tally.Distinct == settings.Messages && tally.Duplicates == 0 && tally.OutOfOrder == 0;
        await Console.Out.WriteLineAsync(ok ? "OK: every message arrived once, each partition in order." : "FAILED: see the counts above.");
        tally.ExitCode = ok ? 0 : 1;
    }
}
