"""worldmodel.pipelines."""
