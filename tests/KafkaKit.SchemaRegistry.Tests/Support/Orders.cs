using Avro;
using Avro.Specific;

namespace KafkaKit.SchemaRegistry.Tests.Support;

/// <summary>Version 1 of the order record, written by hand as avrogen would (no code generation in the build).</summary>
public sealed class Order : ISpecificRecord
{
    public static readonly Schema _SCHEMA = Schema.Parse(
        """{"type":"record","name":"Order","namespace":"kafkakit.tests","fields":[{"name":"id","type":"string"},{"name":"amount","type":"double"}]}""");

    public string Id { get; set; } = string.Empty;

    public double Amount { get; set; }

    public Schema Schema => _SCHEMA;

    public object Get(int fieldPos) => fieldPos switch
    {
        0 => Id,
        1 => Amount,
        _ => throw new AvroRuntimeException($"Bad index {fieldPos} in Get()"),
    };

    public void Put(int fieldPos, object fieldValue)
    {
        switch (fieldPos)
        {
            case 0: Id = (string)fieldValue; break;
            case 1: Amount = (double)fieldValue; break;
            default: throw new AvroRuntimeException($"Bad index {fieldPos} in Put()");
        }
    }
}

/// <summary>Version 2: a field added with a default (a BACKWARD- and FORWARD-compatible change).</summary>
public sealed class OrderV2 : ISpecificRecord
{
    public static readonly Schema _SCHEMA = Schema.Parse(
        """{"type":"record","name":"Order","namespace":"kafkakit.tests","fields":[{"name":"id","type":"string"},{"name":"amount","type":"double"},{"name":"currency","type":"string","default":"EUR"}]}""");

    public string Id { get; set; } = string.Empty;

    public double Amount { get; set; }

    public string Currency { get; set; } = "EUR";

    public Schema Schema => _SCHEMA;

    public object Get(int fieldPos) => fieldPos switch
    {
        0 => Id,
        1 => Amount,
        2 => Currency,
        _ => throw new AvroRuntimeException($"Bad index {fieldPos} in Get()"),
    };

    public void Put(int fieldPos, object fieldValue)
    {
        switch (fieldPos)
        {
            case 0: Id = (string)fieldValue; break;
            case 1: Amount = (double)fieldValue; break;
            case 2: Currency = (string)fieldValue; break;
            default: throw new AvroRuntimeException($"Bad index {fieldPos} in Put()");
        }
    }
}

/// <summary>An incompatible change under BACKWARD: a field added without a default.</summary>
public sealed class OrderBroken : ISpecificRecord
{
    public static readonly Schema _SCHEMA = Schema.Parse(
        """{"type":"record","name":"Order","namespace":"kafkakit.tests","fields":[{"name":"id","type":"string"},{"name":"amount","type":"double"},{"name":"customer","type":"string"}]}""");

    public string Id { get; set; } = string.Empty;

    public double Amount { get; set; }

    public string Customer { get; set; } = string.Empty;

    public Schema Schema => _SCHEMA;

    public object Get(int fieldPos) => fieldPos switch
    {
        0 => Id,
        1 => Amount,
        2 => Customer,
        _ => throw new AvroRuntimeException($"Bad index {fieldPos} in Get()"),
    };

    public void Put(int fieldPos, object fieldValue)
    {
        switch (fieldPos)
        {
            case 0: Id = (string)fieldValue; break;
            case 1: Amount = (double)fieldValue; break;
            case 2: Customer = (string)fieldValue; break;
            default: throw new AvroRuntimeException($"Bad index {fieldPos} in Put()");
        }
    }
}

/// <summary>A JSON Schema record (Confluent's JSON serde generates its schema with NJsonSchema).</summary>
public sealed class Shipment
{
    public string Id { get; set; } = string.Empty;

    public int Parcels { get; set; }
}

/// <summary>An Avro key record (subject <c>&lt;topic&gt;-key</c>).</summary>
public sealed class OrderKey : ISpecificRecord
{
    public static readonly Schema _SCHEMA = Schema.Parse(
        """{"type":"record","name":"OrderKey","namespace":"kafkakit.tests","fields":[{"name":"customer","type":"string"},{"name":"region","type":"int"}]}""");

    public string Customer { get; set; } = string.Empty;

    public int Region { get; set; }

    public Schema Schema => _SCHEMA;

    public object Get(int fieldPos) => fieldPos switch
    {
        0 => Customer,
        1 => Region,
        _ => throw new AvroRuntimeException($"Bad index {fieldPos} in Get()"),
    };

    public void Put(int fieldPos, object fieldValue)
    {
        switch (fieldPos)
        {
            case 0: Customer = (string)fieldValue; break;
            case 1: Region = (int)fieldValue; break;
            default: throw new AvroRuntimeException($"Bad index {fieldPos} in Put()");
        }
    }
}

/// <summary>A JSON Schema key record.</summary>
public sealed class ShipmentKey
{
    public string Warehouse { get; set; } = string.Empty;

    public int Lane { get; set; }
}
