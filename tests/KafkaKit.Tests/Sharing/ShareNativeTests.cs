using System.Diagnostics;
using Confluent.Kafka;
using KafkaKit.Sharing;
using KafkaKit.Testing;
using KafkaKit.Tests.Support;

namespace KafkaKit.Tests.Sharing;

/// <summary>librdkafka's preview share-consumer C API on the embedded cluster, without KafkaKit's engine.</summary>
[TestFixture]
public sealed unsafe class ShareNativeTests
{
    [Test]
    [CancelAfter(60_000)]
    public void ShareConsumer_PollAcknowledgeCommitClose_OnEmbeddedCluster()
    {
        using var cluster = EmbeddedKafkaCluster.Start();
        cluster.ConfigureShareGroups(readFromEarliest: true);
        cluster.CreateTopic("spike");
        using (var producer = new ProducerBuilder<Null, string>(new ProducerConfig { BootstrapServers = cluster.BootstrapServers }).Build())
        {
            for (var i = 0; i < 10; i++)
            {
                producer.Produce("spike", new Message<Null, string> { Value = "v" + i });
            }

            Assert.That(producer.Flush(TimeSpan.FromSeconds(10)), Is.Zero);
        }

        ShareNative.EnsureLoaded();
        var errstr = new byte[512];
        var conf = ShareNative.rd_kafka_conf_new();
        foreach (var (k, v) in new[] { ("bootstrap.servers", cluster.BootstrapServers), ("group.id", "spike-group"), ("share.acknowledgement.mode", "explicit") })
        {
            Assert.That(ShareNative.rd_kafka_conf_set(conf, k, v, errstr, (UIntPtr)errstr.Length), Is.Zero, k);
        }

        var rkshare = ShareNative.rd_kafka_share_consumer_new(conf, errstr, (UIntPtr)errstr.Length);
        Assert.That(rkshare, Is.Not.EqualTo(IntPtr.Zero), System.Text.Encoding.UTF8.GetString(errstr).TrimEnd('\0'));
        var topics = ShareNative.rd_kafka_topic_partition_list_new(1);
        ShareNative.rd_kafka_topic_partition_list_add(topics, "spike", -1);
        Assert.That(ShareNative.rd_kafka_share_subscribe(rkshare, (IntPtr)topics), Is.Zero);
        ShareNative.rd_kafka_topic_partition_list_destroy(topics);

        var values = new List<string>();
        var counts = new List<short>();
        var clock = Stopwatch.StartNew();
        var errors = new List<string>();
        while (values.Count < 10 && clock.Elapsed < TimeSpan.FromSeconds(30))
        {
            IntPtr batch = IntPtr.Zero;
            var error = ShareNative.TakeError(ShareNative.rd_kafka_share_poll(rkshare, 500, &batch));
            if (error.Code != 0)
            {
                errors.Add($"{error.Code} {error.Reason}");
                continue;
            }

            var n = (int)ShareNative.rd_kafka_messages_count(batch);
            for (var i = 0; i < n; i++)
            {
                var m = ShareNative.rd_kafka_messages_get(batch, (UIntPtr)i);
                if (m->Err == 0)
                {
                    values.Add(System.Text.Encoding.UTF8.GetString((byte*)m->Payload, (int)m->Len));
                    counts.Add(ShareNative.rd_kafka_message_delivery_count(m));
                }

                Assert.That(ShareNative.rd_kafka_share_acknowledge_type(rkshare, m, ShareNative.AcknowledgeAccept), Is.Zero);
            }

            ShareNative.rd_kafka_messages_destroy(batch);
        }

        TestContext.Out.WriteLine($"got {values.Count} in {clock.ElapsedMilliseconds} ms; delivery counts {string.Join(",", counts)}; poll errors: {string.Join(" | ", errors.Distinct())}");
        ShareNative.PartitionList* results = null;
        var commit = ShareNative.TakeError(ShareNative.rd_kafka_share_commit_sync(rkshare, 5000, &results));
        var resultText = new List<string>();
        if (results != null)
        {
            for (var i = 0; i < results->Cnt; i++)
            {
                resultText.Add($"{ShareNative.Utf8(results->Elems[i].Topic)} [{results->Elems[i].Partition}] err {results->Elems[i].Err}");
            }

            ShareNative.rd_kafka_topic_partition_list_destroy(results);
        }

        TestContext.Out.WriteLine($"commit_sync: {commit.Code} {commit.Reason}; {string.Join(", ", resultText)}");
        var close = ShareNative.TakeError(ShareNative.rd_kafka_share_consumer_close(rkshare));
        var destroy = ShareNative.TakeError(ShareNative.rd_kafka_share_destroy(rkshare));
        TestContext.Out.WriteLine($"close {close.Code} {close.Reason}; destroy {destroy.Code}; total {clock.ElapsedMilliseconds} ms");
        Assert.Multiple(() =>
        {
            Assert.That(values, Is.EquivalentTo(Enumerable.Range(0, 10).Select(i => "v" + i)));
            Assert.That(counts, Is.All.EqualTo((short)1));
            Assert.That(commit.Code, Is.Zero);
            Assert.That(close.Code, Is.Zero);
        });
    }
}
