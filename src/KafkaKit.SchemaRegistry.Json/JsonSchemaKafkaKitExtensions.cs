using Confluent.SchemaRegistry;
using Confluent.SchemaRegistry.Serdes;
using KafkaKit.Consuming;
using KafkaKit.Producing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace KafkaKit.SchemaRegistry.Json;

/// <summary>
/// JSON Schema values with Confluent Schema Registry for KafkaKit producers and consumers, over Confluent's
/// <see cref="JsonSerializer{T}"/> and <see cref="JsonDeserializer{T}"/> (Confluent wire format: magic byte 0, 4-byte
/// schema id, UTF-8 JSON). The schema is generated from the class (NJsonSchema) and registered (or looked up) once per
/// subject; the serializer validates each value against it.
/// </summary>
public static class JsonSchemaKafkaKitExtensions
{
    private const string Format = "JSON Schema";

    /// <summary>Serializes values as JSON Schema JSON with the registry and settings registered by <c>AddSchemaRegistry()</c>.</summary>
    /// <typeparam name="TKey">The key type (its serializer is unchanged).</typeparam>
    /// <typeparam name="TValue">The value type, a class.</typeparam>
    /// <param name="builder">The producer builder.</param>
    /// <param name="services">The service provider of the <c>AddProducer</c> callback.</param>
    /// <returns>The builder.</returns>
    /// <exception cref="InvalidOperationException"><c>AddSchemaRegistry()</c> was not called, or Confluent's serde refused the settings.</exception>
    /// <exception cref="OptionsValidationException">The registry settings are invalid (every problem listed).</exception>
    public static KafkaProducerBuilder<TKey, TValue> UseJsonSchema<TKey, TValue>(this KafkaProducerBuilder<TKey, TValue> builder, IServiceProvider services)
        where TValue : class
    {
        ArgumentNullException.ThrowIfNull(services);
        return builder.UseJsonSchema(Client(services), services.GetRequiredService<IOptions<SchemaRegistryOptions>>().Value);
    }

    /// <summary>Serializes values as JSON Schema JSON with <paramref name="client"/>.</summary>
    /// <typeparam name="TKey">The key type (its serializer is unchanged).</typeparam>
    /// <typeparam name="TValue">The value type, a class.</typeparam>
    /// <param name="builder">The producer builder.</param>
    /// <param name="client">The registry client.</param>
    /// <param name="options">Subject name strategy, auto-registration, latest version (<c>new SchemaRegistryOptions()</c> for the defaults).</param>
    /// <returns>The builder.</returns>
    /// <exception cref="InvalidOperationException">Confluent's serde refused the settings.</exception>
    public static KafkaProducerBuilder<TKey, TValue> UseJsonSchema<TKey, TValue>(this KafkaProducerBuilder<TKey, TValue> builder, ISchemaRegistryClient client, SchemaRegistryOptions options)
        where TValue : class
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(options);
        var config = new JsonSerializerConfig
        {
            AutoRegisterSchemas = options.AutoRegisterSchemas,
            UseLatestVersion = options.UseLatestVersion,
            SubjectNameStrategy = options.SubjectNameStrategy,
        };
        return builder.SetValueSerializer(SchemaRegistrySerdes.Classify(Create(() => new JsonSerializer<TValue>(client, config)), Format));
    }

    /// <summary>Deserializes JSON Schema values with the registry and settings registered by <c>AddSchemaRegistry()</c>.</summary>
    /// <typeparam name="TKey">The key type (its deserializer is unchanged).</typeparam>
    /// <typeparam name="TValue">The value type, a class.</typeparam>
    /// <param name="builder">The consumer builder.</param>
    /// <param name="services">The service provider of the <c>AddConsumer</c> callback.</param>
    /// <returns>The builder.</returns>
    /// <exception cref="InvalidOperationException"><c>AddSchemaRegistry()</c> was not called, or Confluent's serde refused the settings.</exception>
    /// <exception cref="OptionsValidationException">The registry settings are invalid (every problem listed).</exception>
    public static KafkaConsumerBuilder<TKey, TValue> UseJsonSchema<TKey, TValue>(this KafkaConsumerBuilder<TKey, TValue> builder, IServiceProvider services)
        where TValue : class
    {
        ArgumentNullException.ThrowIfNull(services);
        return builder.UseJsonSchema(Client(services), services.GetRequiredService<IOptions<SchemaRegistryOptions>>().Value);
    }

    /// <summary>Deserializes JSON Schema values with <paramref name="client"/>.</summary>
    /// <typeparam name="TKey">The key type (its deserializer is unchanged).</typeparam>
    /// <typeparam name="TValue">The value type, a class.</typeparam>
    /// <param name="builder">The consumer builder.</param>
    /// <param name="client">The registry client.</param>
    /// <param name="options">Subject name strategy and latest version (<c>new SchemaRegistryOptions()</c> for the defaults).</param>
    /// <returns>The builder.</returns>
    /// <exception cref="InvalidOperationException">Confluent's serde refused the settings.</exception>
    public static KafkaConsumerBuilder<TKey, TValue> UseJsonSchema<TKey, TValue>(this KafkaConsumerBuilder<TKey, TValue> builder, ISchemaRegistryClient client, SchemaRegistryOptions options)
        where TValue : class
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(options);
        var config = new JsonDeserializerConfig
        {
            UseLatestVersion = options.UseLatestVersion,
            SubjectNameStrategy = options.SubjectNameStrategy,
        };
        return builder.SetValueDeserializer(SchemaRegistrySerdes.Classify(Create(() => new JsonDeserializer<TValue>(client, config)), Format));
    }

    private static ISchemaRegistryClient Client(IServiceProvider services) =>
        services.GetService<ISchemaRegistryClient>()
        ?? throw new InvalidOperationException("UseJsonSchema needs a schema registry client: call AddSchemaRegistry() on the KafkaKit builder (settings in KafkaKit:SchemaRegistry), or register an ISchemaRegistryClient.");

    private static TSerde Create<TSerde>(Func<TSerde> create)
    {
        try
        {
            return create();
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            throw new InvalidOperationException($"Confluent's JSON Schema serde refused the settings: {e.Message}", e);
        }
    }
}
