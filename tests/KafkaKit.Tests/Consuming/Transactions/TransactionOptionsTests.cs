using Confluent.Kafka;
using KafkaKit.Consuming;
using Microsoft.Extensions.Options;

namespace KafkaKit.Tests.Consuming.Transactions;

/// <summary>Validation of the exactly-once options and of <see cref="KafkaConsumerOptions.IsolationLevel"/> (no cluster).</summary>
[TestFixture]
public sealed class TransactionOptionsTests
{
    private static KafkaConsumerOptions Options()
    {
        var options = new KafkaConsumerOptions { BootstrapServers = ConsumerTestKit.Unreachable, GroupId = "g" };
        options.Topics.Add("in");
        return options;
    }

    private static OptionsValidationException BuildFails(KafkaConsumerOptions options, bool transactionalHandler = true)
    {
        var builder = new KafkaConsumerBuilder<string, string>("c", options);
        if (transactionalHandler)
        {
            builder.SetTransactionalHandler((_, _, _) => default);
        }
        else
        {
            builder.SetHandler((_, _) => default);
        }

        return Assert.Throws<OptionsValidationException>(() => builder.Build())!;
    }

    [Test]
    public void Build_InvalidTransactionOptions_ListsEveryProblem()
    {
        var options = Options();
        options.Transactions.TransactionalIdPrefix = "bad id";
        options.Transactions.MaxRecords = 0;
        options.Transactions.MaxInterval = TimeSpan.Zero;
        options.Transactions.OperationTimeout = TimeSpan.FromMinutes(10);
        options.Ordering = ConsumerOrdering.Key;
        options.Config["enable.auto.commit"] = "true";
        options.IsolationLevel = IsolationLevel.ReadUncommitted;

        var message = BuildFails(options).Message;

        Assert.Multiple(() =>
        {
            Assert.That(message, Does.Contain("TransactionalIdPrefix is 'bad id'"));
            Assert.That(message, Does.Contain("MaxRecords is 0"));
            Assert.That(message, Does.Contain("MaxInterval is 00:00:00"));
            Assert.That(message, Does.Contain("OperationTimeout is 00:10:00"));
            Assert.That(message, Does.Contain("Ordering is Key"));
            Assert.That(message, Does.Contain("'enable.auto.commit=true'"));
            Assert.That(message, Does.Contain("'isolation.level=read_uncommitted'"));
        });
    }

    [Test]
    public void Build_TransactionalHandlerWithoutPrefix_NamesTheMissingOption()
    {
        var message = BuildFails(Options()).Message;
        Assert.That(message, Does.Contain("Transactions.TransactionalIdPrefix is not set"));
    }

    [Test]
    public void Build_PrefixWithPlainHandler_AsksForTransactionalHandler()
    {
        var options = Options();
        options.Transactions.TransactionalIdPrefix = "svc-0";
        var message = BuildFails(options, transactionalHandler: false).Message;
        Assert.That(message, Does.Contain("no transactional handler"));
        Assert.That(message, Does.Contain("an exactly-once consumer takes only SetTransactionalHandler"));
    }

    [Test]
    public void Build_PrefixWithRetryTopics_NamesTheAllowedActions()
    {
        var options = Options();
        options.Transactions.TransactionalIdPrefix = "svc-0";
        options.OnError = ConsumerErrorAction.RetryTopics;
        options.RetryTopics.Delays.Add(TimeSpan.FromSeconds(1));
        var message = BuildFails(options).Message;
        Assert.That(message, Does.Contain("OnError is RetryTopics, which an exactly-once consumer does not support (a retry write would not be part of the transaction); use DeadLetter, Skip or Stop."));
    }

    [Test]
    public void Build_BadIsolationLevelValue_NamesValueAndAllowed()
    {
        var options = Options();
        options.Config["isolation.level"] = "committed";
        var message = BuildFails(options, transactionalHandler: false).Message;
        Assert.That(message, Does.Contain("'isolation.level=committed'").And.Contain("read_committed or read_uncommitted"));
    }

    [Test]
    public void Build_Transactional_CommitsOnlyInTransactionsAndReadsCommitted()
    {
        var options = Options();
        options.Transactions.TransactionalIdPrefix = "svc-0";
        var consumer = new KafkaConsumerBuilder<string, string>("c", options).SetTransactionalHandler((_, _, _) => default).Build();
        Assert.Multiple(() =>
        {
            Assert.That(consumer.Config.Get("enable.auto.commit"), Is.EqualTo("false"));
            Assert.That(consumer.Config.Get("isolation.level"), Is.EqualTo("read_committed"));
            Assert.That(consumer.Transactions!.TransactionalId, Is.EqualTo("svc-0-c"));
        });
    }

    [Test]
    public void Build_IsolationLevelOption_SetsProperty()
    {
        var options = Options();
        options.IsolationLevel = IsolationLevel.ReadUncommitted;
        var consumer = new KafkaConsumerBuilder<string, string>("c", options).SetHandler((_, _) => default).Build();
        Assert.That(consumer.Config.Get("isolation.level"), Is.EqualTo("read_uncommitted"));
    }
}
