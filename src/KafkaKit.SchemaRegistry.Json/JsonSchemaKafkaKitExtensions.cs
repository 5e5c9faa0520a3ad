using Confluent.Kafka;
using Confluent.SchemaRegistry;
using Confluent.SchemaRegistry.Serdes;
using KafkaKit.Consuming;
using KafkaKit.Producing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace KafkaKit.SchemaRegistry.Json;

/// <summary>
/// JSON Schema keys and values with Confluent Schema Registry for KafkaKit producers and consumers, over Confluent's
/// <see cref="JsonSerializer{T}"/> and <see cref="JsonDeserializer{T}"/> (Confluent wire format: magic byte 0, 4-byte
/// schema id, UTF-8 JSON). The schema is generated from the class (NJsonSchema) and registered (or looked up) once per
/// subject; the serializer validates each value against it. <c>UseJsonSchema</c> covers the value, <c>UseJsonSchemaKey</c>
/// the key (subject <c>&lt;topic&gt;-key</c> with the default <see cref="SubjectNameStrategy.Topic"/>); call both for
/// JSON Schema keys and values.
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
        return builder.SetValueSerializer(Serializer<TValue>(client, options));
    }

    /// <summary>Serializes keys as JSON Schema JSON (subject <c>&lt;topic&gt;-key</c> by default) with the registry and settings registered by <c>AddSchemaRegistry()</c>.</summary>
    /// <typeparam name="TKey">The key type, a class.</typeparam>
    /// <typeparam name="TValue">The value type (its serializer is unchanged; <c>UseJsonSchema</c> for JSON Schema values).</typeparam>
    /// <param name="builder">The producer builder.</param>
    /// <param name="services">The service provider of the <c>AddProducer</c> callback.</param>
    /// <returns>The builder.</returns>
    /// <exception cref="InvalidOperationException"><c>AddSchemaRegistry()</c> was not called, or Confluent's serde refused the settings.</exception>
    /// <exception cref="OptionsValidationException">The registry settings are invalid (every problem listed).</exception>
    public static KafkaProducerBuilder<TKey, TValue> UseJsonSchemaKey<TKey, TValue>(this KafkaProducerBuilder<TKey, TValue> builder, IServiceProvider services)
        where TKey : class
    {
        ArgumentNullException.ThrowIfNull(services);
        return builder.UseJsonSchemaKey(Client(services), services.GetRequiredService<IOptions<SchemaRegistryOptions>>().Value);
    }

    /// <summary>Serializes keys as JSON Schema JSON (subject <c>&lt;topic&gt;-key</c> by default) with <paramref name="client"/>.</summary>
    /// <typeparam name="TKey">The key type, a class.</typeparam>
    /// <typeparam name="TValue">The value type (its serializer is unchanged).</typeparam>
    /// <param name="builder">The producer builder.</param>
    /// <param name="client">The registry client.</param>
    /// <param name="options">Subject name strategy, auto-registration, latest version (<c>new SchemaRegistryOptions()</c> for the defaults).</param>
    /// <returns>The builder.</returns>
    /// <exception cref="InvalidOperationException">Confluent's serde refused the settings.</exception>
    public static KafkaProducerBuilder<TKey, TValue> UseJsonSchemaKey<TKey, TValue>(this KafkaProducerBuilder<TKey, TValue> builder, ISchemaRegistryClient client, SchemaRegistryOptions options)
        where TKey : class
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(options);
        return builder.SetKeySerializer(Serializer<TKey>(client, options));
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
        return builder.SetValueDeserializer(Deserializer<TValue>(client, options));
    }

    /// <summary>Deserializes JSON Schema keys with the registry and settings registered by <c>AddSchemaRegistry()</c>.</summary>
    /// <typeparam name="TKey">The key type, a class.</typeparam>
    /// <typeparam name="TValue">The value type (its deserializer is unchanged; <c>UseJsonSchema</c> for JSON Schema values).</typeparam>
    /// <param name="builder">The consumer builder.</param>
    /// <param name="services">The service provider of the <c>AddConsumer</c> callback.</param>
    /// <returns>The builder.</returns>
    /// <exception cref="InvalidOperationException"><c>AddSchemaRegistry()</c> was not called, or Confluent's serde refused the settings.</exception>
    /// <exception cref="OptionsValidationException">The registry settings are invalid (every problem listed).</exception>
    public static KafkaConsumerBuilder<TKey, TValue> UseJsonSchemaKey<TKey, TValue>(this KafkaConsumerBuilder<TKey, TValue> builder, IServiceProvider services)
        where TKey : class
    {
        ArgumentNullException.ThrowIfNull(services);
        return builder.UseJsonSchemaKey(Client(services), services.GetRequiredService<IOptions<SchemaRegistryOptions>>().Value);
    }

    /// <summary>Deserializes JSON Schema keys with <paramref name="client"/>.</summary>
    /// <typeparam name="TKey">The key type, a class.</typeparam>
    /// <typeparam name="TValue">The value type (its deserializer is unchanged).</typeparam>
    /// <param name="builder">The consumer builder.</param>
    /// <param name="client">The registry client.</param>
    /// <param name="options">Subject name strategy and latest version (<c>new SchemaRegistryOptions()</c> for the defaults).</param>
    /// <returns>The builder.</returns>
    /// <exception cref="InvalidOperationException">Confluent's serde refused the settings.</exception>
    public static KafkaConsumerBuilder<TKey, TValue> UseJsonSchemaKey<TKey, TValue>(this KafkaConsumerBuilder<TKey, TValue> builder, ISchemaRegistryClient client, SchemaRegistryOptions options)
        where TKey : class
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(options);
        return builder.SetKeyDeserializer(Deserializer<TKey>(client, options));
    }

    private static IAsyncSerializer<T> Serializer<T>(ISchemaRegistryClient client, SchemaRegistryOptions options)
        where T : class
    {
        var config = new JsonSerializerConfig
        {
            AutoRegisterSchemas = options.AutoRegisterSchemas,
            UseLatestVersion = options.UseLatestVersion,
            SubjectNameStrategy = options.SubjectNameStrategy,
        };
        return SchemaRegistrySerdes.Classify(Create(() => new JsonSerializer<T>(client, config)), Format);
    }

    private static IAsyncDeserializer<T> Deserializer<T>(ISchemaRegistryClient client, SchemaRegistryOptions options)
        where T : class
    {
        var config = new JsonDeserializerConfig
        {
            UseLatestVersion = options.UseLatestVersion,
            SubjectNameStrategy = options.SubjectNameStrategy,
        };
        return SchemaRegistrySerdes.Classify(Create(() => new JsonDeserializer<T>(client, config)), Format);
    }

    private static ISchemaRegistryClient Client(IServiceProvider services) =>
        services.GetService<ISchemaRegistryClient>()
        ?? throw new InvalidOperationException("UseJsonSchema and UseJsonSchemaKey need a schema registry client: call AddSchemaRegistry() on the KafkaKit builder (settings in KafkaKit:SchemaRegistry), or register an ISchemaRegistryClient.");

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
