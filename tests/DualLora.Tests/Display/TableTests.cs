using DualLora.Display;

namespace DualLora.Tests.Display;

public class TableTests
{
    [Fact]
    public void A_table_of_objects_has_one_column_per_property_in_declaration_order()
    {
        var table = Table.From(new[] { new { task = "name", rate = 0.25 }, new { task = "count", rate = 1.0 / 3 } });
        Assert.Equal(["task", "rate"], table.Columns);
        Assert.Equal(["count", "0.333333"], table.Rows[1]);
        Assert.Equal("task   rate\n-----  --------\nname   0.25\ncount  0.333333", table.ToString());
    }

    [Fact]
    public void A_table_of_dictionaries_follows_the_given_columns_and_leaves_missing_cells_empty()
    {
        var rows = new IReadOnlyDictionary<string, object?>[]
        {
            new Dictionary<string, object?> { ["overall"] = "31.0", ["method"] = "lora", ["name"] = 0.5 },
            new Dictionary<string, object?> { ["method"] = "dual_lora" },
        };
        var table = Table.From(["method", "name", "overall"], rows);
        Assert.Equal(["lora", "0.5", "31.0"], table.Rows[0]);
        Assert.Equal(["dual_lora", "", ""], table.Rows[1]);
        Assert.Equal("<table><thead><tr><th>method</th><th>name</th><th>overall</th></tr></thead><tbody><tr><td>lora</td><td>0.5</td><td>31.0</td></tr>" +
                     "<tr><td>dual_lora</td><td></td><td></td></tr></tbody></table>", table.ToHtml());
    }

    [Fact]
    public void A_row_naming_an_unknown_column_is_refused_with_its_name()
    {
        var rows = new IReadOnlyDictionary<string, object?>[] { new Dictionary<string, object?> { ["method"] = "lora", ["nmae"] = 1 } };
        var error = Assert.Throws<ArgumentException>(() => Table.From(["method", "name"], rows));
        Assert.Contains("row 0 names column(s) nmae", error.Message);
    }
}
