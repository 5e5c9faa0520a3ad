using System.Diagnostics;
using KafkaKit.Sharing;
using KafkaKit.Tests.Support;

namespace KafkaKit.Tests.Sharing;

[TestFixture]
[Explicit("diagnosis")]
public sealed class ShareDebugTests
{
    [Test]
    [CancelAfter(120_000)]
    public async Task OneMember_Debug()
    {
        await using var cluster = ShareTestKit.Cluster();
        cluster.CreateTopic("dbg");
        var logs = new CapturingLoggerFactory();
        var ledger = new ShareLedger();
        var options = ShareTestKit.Options(cluster, "dbg", "dbg", 4);
        options.Config["debug"] = "cgrp,fetch,protocol";
        await using var consumer = new KafkaShareConsumerBuilder<string, string>("m", options)
            .SetHandler(async (r, ct) =>
            {
                await Task.Delay(2, ct);
                ledger.Record("m", r.Message.Value);
            })
            .SetLoggerFactory(logs).Build();
        await consumer.StartAsync();
        var clock = Stopwatch.StartNew();
        ShareTestKit.Produce(cluster, "dbg", 10_000);
        await Wait.UntilAsync(() => ledger.Total >= 10_000, TimeSpan.FromSeconds(40));
        TestContext.Out.WriteLine($"{ledger.Total} in {clock.ElapsedMilliseconds} ms dups {ledger.Accepted.Values.Count(v => v > 1)}");
        File.WriteAllLines("/tmp/share-debug.log", logs.Lines.Select(l => $"{l.EventId.Id} {l.Message}"));
    }
}
