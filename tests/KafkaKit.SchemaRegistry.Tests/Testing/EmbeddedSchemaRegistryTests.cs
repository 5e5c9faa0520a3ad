using System.Diagnostics;
using System.Net.Http;
using Avro.Generic;
using Confluent.Kafka;
using Confluent.SchemaRegistry;
using Confluent.SchemaRegistry.Serdes;
using KafkaKit.SchemaRegistry.Tests.Support;
using KafkaKit.Testing;

namespace KafkaKit.SchemaRegistry.Tests.Testing;

/// <summary>The embedded registry, driven only through Confluent's own client and serdes.</summary>
[TestFixture]
[CancelAfter(60_000)]
public sealed class EmbeddedSchemaRegistryTests
{
    private static readonly SerializationContext OrdersValue = new(MessageComponentType.Value, "orders");

    [Test]
    public async Task RegisterAndLookUp_ConfluentClient_SeesSubjectsVersionsAndIds()
    {
        await using var registry = EmbeddedSchemaRegistry.Start();
        using var client = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = registry.Url });

        var id1 = await client.RegisterSchemaAsync("orders-value", new Schema(Order._SCHEMA.ToString(), SchemaType.Avro));
        var id2 = await client.RegisterSchemaAsync("orders-value", new Schema(OrderV2._SCHEMA.ToString(), SchemaType.Avro));
        var again = await client.RegisterSchemaAsync("other-value", new Schema(Order._SCHEMA.ToString(), SchemaType.Avro));

        Assert.Multiple(async () =>
        {
            Assert.That(id2, Is.Not.EqualTo(id1));
            Assert.That(again, Is.EqualTo(id1), "the same schema under another subject keeps its global id");
            Assert.That(await client.GetAllSubjectsAsync(), Is.EquivalentTo(new[] { "orders-value", "other-value" }));
            Assert.That(await client.GetSubjectVersionsAsync("orders-value"), Is.EqualTo(new[] { 1, 2 }));
            var latest = await client.GetLatestSchemaAsync("orders-value");
            Assert.That((latest.Id, latest.Version, latest.Subject), Is.EqualTo((id2, 2, "orders-value")));
            var first = await client.GetRegisteredSchemaAsync("orders-value", 1);
            Assert.That(first.Id, Is.EqualTo(id1));
            var byId = await client.GetSchemaAsync(id1);
            Assert.That(global::Avro.Schema.Parse(byId.SchemaString).ToString(), Is.EqualTo(Order._SCHEMA.ToString()));
            var lookedUp = await client.LookupSchemaAsync("orders-value", new Schema(Order._SCHEMA.ToString(), SchemaType.Avro), ignoreDeletedSchemas: true);
            Assert.That((lookedUp.Id, lookedUp.Version), Is.EqualTo((id1, 1)));
            Assert.That(registry.Subjects, Is.EqualTo(new[] { "orders-value", "other-value" }));
        });
    }

    [Test]
    public async Task AvroSerdes_SpecificAndGeneric_RoundTripThroughRegistry()
    {
        await using var registry = EmbeddedSchemaRegistry.Start();
        using var client = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = registry.Url });
        var serializer = new AvroSerializer<Order>(client);
        var bytes = await serializer.SerializeAsync(new Order { Id = "o-1", Amount = 12.5 }, OrdersValue);

        var specific = await new AvroDeserializer<Order>(client).DeserializeAsync(bytes, false, OrdersValue);
        var generic = await new AvroDeserializer<GenericRecord>(client).DeserializeAsync(bytes, false, OrdersValue);

        Assert.Multiple(() =>
        {
            Assert.That(bytes[0], Is.Zero, "Confluent framing: magic byte 0");
            Assert.That((specific.Id, specific.Amount), Is.EqualTo(("o-1", 12.5)));
            Assert.That(generic["id"], Is.EqualTo("o-1"));
            Assert.That(registry.Subjects, Is.EqualTo(new[] { "orders-value" }));
        });
    }

    [Test]
    public async Task Evolution_FieldAddedWithDefault_OldAndNewReadersReadBothVersions()
    {
        await using var registry = EmbeddedSchemaRegistry.Start();
        using var client = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = registry.Url });
        var v1Bytes = await new AvroSerializer<Order>(client).SerializeAsync(new Order { Id = "old", Amount = 1 }, OrdersValue);
        var v2Bytes = await new AvroSerializer<OrderV2>(client).SerializeAsync(new OrderV2 { Id = "new", Amount = 2, Currency = "USD" }, OrdersValue);

        var newReadsOld = await new AvroDeserializer<OrderV2>(client).DeserializeAsync(v1Bytes, false, OrdersValue);
        var oldReadsNew = await new AvroDeserializer<Order>(client).DeserializeAsync(v2Bytes, false, OrdersValue);

        Assert.Multiple(async () =>
        {
            Assert.That((newReadsOld.Id, newReadsOld.Currency), Is.EqualTo(("old", "EUR")), "the default fills the added field");
            Assert.That((oldReadsNew.Id, oldReadsNew.Amount), Is.EqualTo(("new", 2.0)));
            Assert.That(await client.GetSubjectVersionsAsync("orders-value"), Is.EqualTo(new[] { 1, 2 }));
        });
    }

    [Test]
    public async Task Register_FieldWithoutDefaultUnderBackward_RefusedWithRegistryMessage()
    {
        await using var registry = EmbeddedSchemaRegistry.Start();
        using var client = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = registry.Url });
        await client.RegisterSchemaAsync("orders-value", new Schema(Order._SCHEMA.ToString(), SchemaType.Avro));

        var compatible = await client.IsCompatibleAsync("orders-value", new Schema(OrderBroken._SCHEMA.ToString(), SchemaType.Avro));
        var refused = Assert.ThrowsAsync<SchemaRegistryException>(() =>
            new AvroSerializer<OrderBroken>(client).SerializeAsync(new OrderBroken { Id = "x" }, OrdersValue));

        Assert.Multiple(() =>
        {
            Assert.That(compatible, Is.False);
            Assert.That(refused!.Status, Is.EqualTo(System.Net.HttpStatusCode.Conflict));
            Assert.That(refused.ErrorCode, Is.EqualTo(409));
            Assert.That(refused.Message, Does.Contain("incompatible").And.Contain("orders-value"));
        });
    }

    [Test]
    public async Task Compatibility_None_AcceptsAnyAvroChange_AndConfigIsReadBack()
    {
        await using var registry = EmbeddedSchemaRegistry.Start();
        using var client = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = registry.Url });
        await client.RegisterSchemaAsync("orders-value", new Schema(Order._SCHEMA.ToString(), SchemaType.Avro));

        await client.UpdateCompatibilityAsync(Compatibility.None, "orders-value");
        var id = await client.RegisterSchemaAsync("orders-value", new Schema(OrderBroken._SCHEMA.ToString(), SchemaType.Avro));

        Assert.Multiple(async () =>
        {
            Assert.That(id, Is.EqualTo(2));
            Assert.That(await client.GetCompatibilityAsync("orders-value"), Is.EqualTo(Compatibility.None));
            Assert.That(await client.GetCompatibilityAsync(), Is.EqualTo(Compatibility.Backward));
        });
    }

    [Test]
    public async Task GetSchema_UnknownIdAndSubject_RegistryErrorCodes()
    {
        await using var registry = EmbeddedSchemaRegistry.Start();
        using var client = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = registry.Url });

        var unknownId = Assert.ThrowsAsync<SchemaRegistryException>(() => client.GetSchemaAsync(4242));
        var unknownSubject = Assert.ThrowsAsync<SchemaRegistryException>(() => client.GetLatestSchemaAsync("nobody-value"));

        Assert.Multiple(() =>
        {
            Assert.That(unknownId!.ErrorCode, Is.EqualTo(40403));
            Assert.That(unknownSubject!.ErrorCode, Is.EqualTo(40401));
            Assert.That(unknownSubject.Message, Does.Contain("nobody-value"));
        });
    }

    [Test]
    public async Task JsonSchemaSerdes_RoundTripThroughRegistry()
    {
        await using var registry = EmbeddedSchemaRegistry.Start();
        using var client = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = registry.Url });
        var context = new SerializationContext(MessageComponentType.Value, "shipments");

        var bytes = await new JsonSerializer<Shipment>(client).SerializeAsync(new Shipment { Id = "s-1", Parcels = 3 }, context);
        var back = await new JsonDeserializer<Shipment>(client).DeserializeAsync(bytes, false, context);
        var registered = await client.GetLatestSchemaAsync("shipments-value");

        Assert.Multiple(() =>
        {
            Assert.That((back.Id, back.Parcels), Is.EqualTo(("s-1", 3)));
            Assert.That(registered.SchemaType, Is.EqualTo(SchemaType.Json));
        });
    }

    [Test]
    public async Task SetUnavailable_ClientGetsTransportError_ThenRecovers()
    {
        await using var registry = EmbeddedSchemaRegistry.Start();
        using var client = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = registry.Url, MaxRetries = 1 });
        registry.SetUnavailable(true);

        var down = Assert.CatchAsync<SchemaRegistryException>(() => client.GetAllSubjectsAsync());
        registry.SetUnavailable(false);
        var subjects = await client.GetAllSubjectsAsync();

        Assert.Multiple(() =>
        {
            Assert.That(down!.Status, Is.EqualTo(System.Net.HttpStatusCode.ServiceUnavailable));
            Assert.That(down.ErrorCode, Is.EqualTo(50301));
            Assert.That(subjects, Is.Empty);
        });
    }

    [Test]
    public async Task SetLatency_ResponsesAreDelayed()
    {
        await using var registry = EmbeddedSchemaRegistry.Start();
        using var client = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = registry.Url });
        registry.SetLatency(TimeSpan.FromMilliseconds(300));

        var watch = Stopwatch.StartNew();
        await client.GetAllSubjectsAsync();

        Assert.That(watch.Elapsed, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(290)));
    }

    [Test]
    public async Task BasicAuth_WrongCredentials_Unauthorized_RightOnesServed()
    {
        await using var registry = EmbeddedSchemaRegistry.Start(basicAuthUserInfo: "app:s3cret");
        using var wrong = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = registry.Url, BasicAuthUserInfo = "app:nope", BasicAuthCredentialsSource = AuthCredentialsSource.UserInfo });
        using var right = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = registry.Url, BasicAuthUserInfo = "app:s3cret", BasicAuthCredentialsSource = AuthCredentialsSource.UserInfo });

        var refused = Assert.CatchAsync<HttpRequestException>(() => wrong.GetAllSubjectsAsync());

        Assert.Multiple(async () =>
        {
            Assert.That(refused is SchemaRegistryException { Status: System.Net.HttpStatusCode.Unauthorized } || refused!.Message.Contains("Unauthorized", StringComparison.Ordinal), Is.True, refused!.ToString());
            Assert.That(await right.GetAllSubjectsAsync(), Is.Empty);
        });
    }
}
