using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DualLora.Analysis;

/// <summary>One task's batches, whose loss gradients are summed into the task's gradient.</summary>
public sealed record TaskBatches<TBatch>(string Task, IReadOnlyList<TBatch> Batches);

/// <summary>The cosines between the tasks' gradients on one group of parameters (all of them, or one layer's).</summary>
/// <param name="Group">The group's name.</param>
/// <param name="Cosines">float64 [tasks, tasks]: entry (i, j) is cos(g_i, g_j) restricted to the group; NaN where a task's gradient there is zero.</param>
/// <param name="Norms">Each task's gradient norm on the group, in task order.</param>
public sealed record GradientCosines(string Group, Tensor Cosines, IReadOnlyList<double> Norms);

/// <summary>
/// Gradient conflict between tasks (as in PCGrad, Yu et al. 2020): each task's loss gradient g_k on the same
/// parameters, summed over its batches, and the cosine between every pair of tasks,
/// cos(g_i, g_j) = g_i · g_j / (‖g_i‖ ‖g_j‖). A negative cosine means a step that lowers one task's loss raises
/// the other's (to first order); near 0, the tasks pull in unrelated directions; near 1, they agree.
/// </summary>
public sealed class GradientConflict
{
    public IReadOnlyList<string> Tasks { get; }
    /// <summary>Over all the parameters given, flattened and concatenated.</summary>
    public GradientCosines Overall { get; }
    /// <summary>Per group of parameters (as <c>groupOf</c> named them), in the order the groups first appear.</summary>
    public IReadOnlyList<GradientCosines> Groups { get; }

    GradientConflict(IReadOnlyList<string> tasks, GradientCosines overall, IReadOnlyList<GradientCosines> groups)
    {
        Tasks = tasks;
        Overall = overall;
        Groups = groups;
    }

    /// <summary>
    /// Measures each task's gradient on <paramref name="parameters"/> and their cosines. The model runs in eval mode
    /// (no dropout, so the gradient is the loss's, not a random draw of it); every other parameter of the model is
    /// frozen meanwhile; afterwards the modules' modes and requires_grad are as before and the parameters' gradients are zero.
    /// </summary>
    /// <param name="model">The model the loss runs.</param>
    /// <param name="parameters">The parameters to differentiate (an adapter's: <c>AdapterHandle.AdapterNamedParameters()</c>), named.</param>
    /// <param name="tasks">At least two tasks, distinct names, each with at least one batch.</param>
    /// <param name="loss">A batch's scalar loss.</param>
    /// <param name="groupOf">The group a parameter's name belongs to (for example its layer); null for the overall cosines only.</param>
    public static GradientConflict Measure<TBatch>(nn.Module model, IReadOnlyList<(string Name, Parameter Parameter)> parameters,
        IReadOnlyList<TaskBatches<TBatch>> tasks, Func<TBatch, Tensor> loss, Func<string, string>? groupOf = null)
    {
        if (tasks.Count < 2) throw new ArgumentException($"gradient conflict needs at least two tasks; {tasks.Count} given.", nameof(tasks));
        if (tasks.GroupBy(t => t.Task).FirstOrDefault(g => g.Count() > 1) is { } duplicate)
            throw new ArgumentException($"task \"{duplicate.Key}\" is given {duplicate.Count()} times; each task once.", nameof(tasks));
        if (tasks.FirstOrDefault(t => t.Batches.Count == 0) is { } empty)
            throw new ArgumentException($"task \"{empty.Task}\" has no batches; its gradient would be undefined.", nameof(tasks));
        if (parameters.Count == 0) throw new ArgumentException("no parameters to take the gradient on.", nameof(parameters));
        if (parameters.FirstOrDefault(p => !p.Parameter.requires_grad) is { Name: { } frozen })
            throw new ArgumentException($"parameter \"{frozen}\" does not require gradients; pass trainable parameters (an injected adapter's).", nameof(parameters));

        var measured = new HashSet<IntPtr>(parameters.Select(p => p.Parameter.Handle));
        var others = model.parameters().Where(p => p.requires_grad && !measured.Contains(p.Handle)).ToList();
        var training = model.modules().Prepend(model).Select(m => (Module: m, m.training)).ToList();
        var gradients = new List<Tensor>();
        try
        {
            foreach (var other in others) other.requires_grad = false;
            model.eval();
            foreach (var task in tasks) gradients.Add(TaskGradient(parameters, task, loss));
        }
        finally
        {
            foreach (var other in others) other.requires_grad = true;
            foreach (var (module, wasTraining) in training) module.train(wasTraining);
            ClearGradients(parameters);
        }

        var names = tasks.Select(t => t.Task).ToList();
        using var scope = NewDisposeScope();
        var stacked = stack(gradients);                                     // [tasks, P]
        foreach (var gradient in gradients) gradient.Dispose();
        var overall = Cosines("all", stacked);
        if (overall.Norms.ToList().IndexOf(0) is var zero and >= 0)
            throw new InvalidOperationException($"task \"{names[zero]}\" has a zero gradient on these parameters, so its cosines are undefined " +
                "(the loss does not reach them, or is flat in them on these batches; a LoRA whose A and B are both zero is one such point).");
        var groups = new List<GradientCosines>();
        if (groupOf != null)
        {
            var sizes = parameters.Select(p => p.Parameter.numel()).ToList();
            var offsets = sizes.Select((_, i) => sizes.Take(i).Sum()).ToList();
            foreach (var group in parameters.Select((p, i) => (Group: groupOf(p.Name), Index: i)).GroupBy(p => p.Group))
            {
                var columns = cat(group.Select(p => arange(offsets[p.Index], offsets[p.Index] + sizes[p.Index], dtype: int64)).ToList(), 0);
                groups.Add(Cosines(group.Key, stacked.index_select(1, columns)));
            }
        }
        return new GradientConflict(names, overall, groups);
    }

    /// <summary>The task's loss gradient on the parameters, summed over its batches, flattened to float64 [P] in parameter order.</summary>
    static Tensor TaskGradient<TBatch>(IReadOnlyList<(string Name, Parameter Parameter)> parameters, TaskBatches<TBatch> task, Func<TBatch, Tensor> loss)
    {
        ClearGradients(parameters);
        foreach (var batch in task.Batches)
        {
            using var scope = NewDisposeScope();
            loss(batch).backward();
        }
        return cat(parameters.Select(p => p.Parameter.grad is { } g ? g.flatten().to(float64) : zeros(p.Parameter.numel(), float64)).ToList(), 0);
    }

    /// <summary>cos(g_i, g_j) for the rows of <paramref name="gradients"/> [tasks, P]; NaN where a row is zero.</summary>
    static GradientCosines Cosines(string group, Tensor gradients)
    {
        var norms = gradients.norm(1);                                      // [tasks]
        var cosines = gradients.matmul(gradients.T) / (norms.unsqueeze(1) * norms.unsqueeze(0));
        // A zero row gives 0/0 = NaN, which is what an undefined cosine should read.
        return new GradientCosines(group, cosines.MoveToOuterDisposeScope(), norms.data<double>().ToArray());
    }

    static void ClearGradients(IReadOnlyList<(string Name, Parameter Parameter)> parameters)
    {
        foreach (var (_, parameter) in parameters)
            if (parameter.grad is { } grad) grad.zero_();
    }
}
